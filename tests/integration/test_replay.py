"""``shadow-eval replay`` of traffic recorded from a streaming run gives the same verdicts.

The streaming run is the demo (real broker, worker and join processes); its recorder
logs the traffic as consumed from the topics, with the delivery model's inputs that its
decision and KPI functions need. Replaying that log offline -- as JSON Lines and
converted to Avro container files -- must reach the streaming path's verdicts and KPIs.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from streams.demo.processes import shadow_eval_command
from streams.records import GroundTruth, ModelInput, Prediction
from streams.replay import read_traffic, write_avro
from tests.integration.test_demo import DemoRun, run_demo


@pytest.fixture(scope="module")
def streamed(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    run = run_demo(tmp_path_factory.mktemp("replay"))
    assert run.code == 0, run.output[-3000:]
    return run


def _replay(directory: Path, *files: Path) -> dict[str, dict[str, Any]]:
    """``shadow-eval replay --json``: its summary row per experiment."""
    done = subprocess.run(
        shadow_eval_command(
            "replay",
            *map(str, files),
            "--experiments",
            "reports/demo-experiments.toml",
            "--report",
            "reports/replay.html",
            "--json",
        ),
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    payload = json.loads(done.stdout)
    assert (directory / "reports" / "replay.html").read_text().count("data:image/png") >= 4
    return {row["experiment"]: row for row in payload["experiments"]}


def _decisions(rows: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {name: row["decision"].upper() for name, row in rows.items()}


def test_replay_of_jsonl_matches_the_streaming_verdicts_and_kpis(streamed: DemoRun) -> None:
    streaming = {name: decision for name, (decision, _) in streamed.verdicts().items()}
    assert streaming["diagnosis/v3"] == "REJECT" and streaming["eta/v2"] == "REJECT"
    traffic = streamed.directory / "reports" / "demo-traffic.jsonl"
    rows = _replay(streamed.directory, traffic)
    assert _decisions(rows) == streaming
    eta = rows["eta/v2"]
    assert "late" in eta["reason"]
    kpis = {k["metric"]: k for k in eta["kpis"]}
    assert set(kpis) == {"late", "idle_minutes"}
    assert eta["model"]["metric"] == "abs_error"
    # Every pair is labelled in both runs, so the final effects are the same means.
    for metric, replayed in (("late", kpis["late"]), ("idle_minutes", kpis["idle_minutes"]),
                             ("abs_error", eta["model"])):  # fmt: skip
        assert abs(replayed["delta"] - streamed.effect(metric)) <= 1e-4, metric
    assert kpis["late"]["low"] > 0 and eta["model"]["delta"] < 0
    assert eta["decision_agreement"] is not None


def test_replay_of_avro_matches_the_jsonl_replay(streamed: DemoRun) -> None:
    reports = streamed.directory / "reports"
    records = read_traffic([reports / "demo-traffic.jsonl"])
    files = []
    for kind, name in ((Prediction, "p"), (GroundTruth, "g"), (ModelInput, "i")):
        files.append(reports / f"{name}.avro")
        assert write_avro(files[-1], [r for r in records if isinstance(r, kind)]) > 0
    from_avro = _replay(streamed.directory, *files)
    assert from_avro == _replay(streamed.directory, reports / "demo-traffic.jsonl")


def test_replay_reports_bad_input_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type": "prediction"}\n')
    experiments = tmp_path / "e.toml"
    experiments.write_text(
        '[[experiments]]\nname = "e"\nmodel = "m"\nlive_version = "v1"\ncandidate = "v2"\n'
    )
    done = subprocess.run(
        shadow_eval_command("replay", str(bad), "--experiments", str(experiments)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "bad.jsonl:1: missing field" in done.stderr
    assert "Traceback" not in done.stderr
