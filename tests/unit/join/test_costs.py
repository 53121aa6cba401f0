"""Cost judged like any metric: ``cpu_ms``, ``worker_memory_mb`` and ``load_s`` paired per
request, guardrails with relative margins, the verdict's reason and the summary's column."""

from __future__ import annotations

import doctest
import importlib
import json
import random
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from streams.join.experiments import ExperimentsFile
from streams.join.observe import metric_values
from streams.records import GroundTruth, JoinEvent, JoinKind, Prediction, Role
from streams.replay.run import replay_records
from streams.replay.traffic import read_traffic, write_jsonl
from streams.report.costs import cost_summary
from streams.report.html import summary_table
from streams.report.summary import render_summary, summary_rows

EXPERIMENTS = ExperimentsFile.parse("""
[join]
snapshot_every_s = 10

[[experiments]]
name = "churn"
model = "churn"
live_version = "v1"
candidates = ["costly", "same"]
task = "binary"
primary_metric = "correct"
min_samples = 200
guardrails = [{metric = "cpu_ms", margin = 0.5, relative = true}]
""")

LIVE_CPU_MS, LIVE_MB, CANDIDATE_MB = 2.0, 300.0, 900.0


def traffic(n: int, seed: int = 3) -> list[Prediction | GroundTruth]:
    """Both candidates 10 points more accurate than live; "costly" burns 4x live's CPU
    per prediction and 3x its memory, "same" costs what live does."""
    rng = random.Random(seed)
    records: list[Prediction | GroundTruth] = []
    for i in range(n):
        t, rid, label = 1_000_000 + i * 50, f"r{i}", rng.choice("01")
        other = "1" if label == "0" else "0"

        def cpu(scale: float) -> float:
            return scale * LIVE_CPU_MS * rng.uniform(0.8, 1.2)

        live_value = label if rng.random() < 0.8 else other
        records.append(
            Prediction(rid, "churn", "v1", Role.LIVE, t, live_value, cpu_ms=cpu(1.0),
                       worker="app:1", worker_peak_mb=LIVE_MB, load_s=1.0)
        )  # fmt: skip
        for version, scale, memory in (("costly", 4.0, CANDIDATE_MB), ("same", 1.0, LIVE_MB)):
            value = label if rng.random() < 0.9 else other
            records.append(
                Prediction(rid, "churn", version, Role.SHADOW, t + 1, value, cpu_ms=cpu(scale),
                           worker=f"{version}:1", worker_peak_mb=memory, load_s=2.0)
            )  # fmt: skip
        records.append(GroundTruth(rid, "churn", t + 2, label))
    return records


def test_cost_metrics_are_paired_only_when_both_sides_measured_them() -> None:
    experiment = EXPERIMENTS.experiments[0]
    live = Prediction("r", "churn", "v1", Role.LIVE, 0, "1", cpu_ms=1.5, worker_peak_mb=200.0)
    candidate = Prediction("r", "churn", "costly", Role.SHADOW, 0, "1", cpu_ms=6.0,
                           worker_peak_mb=500.0, load_s=3.0)  # fmt: skip
    event = JoinEvent(JoinKind.PAIRED, "churn/costly", "r", 0, live, candidate)
    found = metric_values(event, experiment)
    assert found is not None
    paired = found[0]
    assert paired["cpu_ms"] == (1.5, 6.0) and paired["worker_memory_mb"] == (200.0, 500.0)
    assert "load_s" not in paired  # live did not say how long its model took to load
    version_1 = replace(live, cpu_ms=None, worker_peak_mb=None)  # a version 1 record
    found = metric_values(replace(event, live=version_1), experiment)
    assert found is not None and not {"cpu_ms", "worker_memory_mb"} & set(found[0])


def test_a_better_but_costlier_candidate_is_rejected_on_its_cpu_guardrail() -> None:
    run = replay_records(traffic(1500), EXPERIMENTS)
    costly, same = run.final("churn/costly"), run.final("churn/same")
    assert costly.decision == "reject", costly.reason
    assert costly.reason.startswith("primary correct significantly better")
    assert "guardrail cpu_ms violated" in costly.reason and "of live" in costly.reason
    assert same.decision == "promote", same.reason
    cost = cost_summary(run, "churn/costly")
    assert cost.cpu_ratio is not None and 3.6 < cost.cpu_ratio < 4.4
    assert cost.cpu_p50_ms is not None and 7.0 < cost.cpu_p50_ms < 9.0
    assert cost.cpu_p99_ms is not None and cost.cpu_p50_ms < cost.cpu_p99_ms < 10.0
    assert cost.memory_mb == CANDIDATE_MB and cost.memory_ratio == CANDIDATE_MB / LIVE_MB
    assert cost.load_s == 2.0 and cost.load_ratio == 2.0
    # 20 paired requests a second: 8 ms each is about 0.16 of a core.
    assert cost.cores is not None and 0.14 < cost.cores < 0.18
    assert cost_summary(run, "churn/same").memory_ratio == 1.0


def test_the_summary_the_json_and_the_report_show_the_costs(tmp_path: Path) -> None:
    path = tmp_path / "traffic.jsonl"
    write_jsonl(path, traffic(300))
    records = read_traffic([path])  # the cost fields survive a traffic log
    assert isinstance(records[0], Prediction) and records[0].cpu_ms is not None
    run = replay_records(records, EXPERIMENTS)
    console = Console(record=True, width=250)
    render_summary(run, console)
    text = console.export_text()
    assert "what each candidate costs" in text and "MiB per replica (3.0x)" in text
    rows = {row.experiment: row.to_dict() for row in summary_rows(run)}
    assert json.loads(json.dumps(rows))["churn/costly"]["cost"]["memory_mb"] == CANDIDATE_MB
    assert "900 MiB per replica (3.0x)" in summary_table(summary_rows(run))  # the HTML report's


@pytest.mark.parametrize("module", ["streams.report.costs", "streams.status_workers"])
def test_docstring_examples(module: str) -> None:
    assert doctest.testmod(importlib.import_module(module)).failed == 0
