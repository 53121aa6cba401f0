"""``shadow-eval demo`` run as a new user would: one command, its own broker, a verdict.

The demo starts (and stops) its own Kafka broker, so this test does not use the session
broker. It runs once per module; the tests read its output and files. Besides the
diagnosis classifier it serves the delivery ETA model, judged by downstream KPIs: the
early candidate is better on MAE and rejected for its late deliveries. The costly
diagnosis candidate is the most accurate and is not promoted: it needs several times
live's CPU per prediction.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from streams.demo.processes import shadow_eval_command

REPO = Path(__file__).resolve().parents[2]
DECISIONS = ("PROMOTE", "REJECT", "CONTINUE")
GUARDRAIL = re.compile(r"\(candidate ([+-]\d+)% to ([+-]\d+)% of live, margin ([+-]\d+)%\)")
REQUESTS = 1200
"""Diagnosis requests, and as many delivery orders: the early ETA candidate's extra late
deliveries are significant after some 700 orders of the demo's stream."""


@dataclass(frozen=True)
class DemoRun:
    code: int
    output: str
    seconds: float
    directory: Path

    def verdicts(self) -> dict[str, tuple[str, str]]:
        """``experiment -> (decision, reason)`` of the printed verdicts table, each reason
        joined from the lines its cell wraps over."""
        table = self.output[self.output.index("shadow-eval demo: verdicts") :]
        rows: dict[str, list[str]] = {}
        name = ""
        for line in table[: table.index("Δ = candidate - live")].splitlines():
            cells = [c.strip() for c in line.split("│")[1:-1]]
            if not cells:
                continue
            name = cells[0] or name
            rows.setdefault(name, []).append(cells[-1])
            if cells[-2] in DECISIONS:
                rows[name].insert(0, cells[-2])
        return {n: (parts[0], " ".join(parts[1:]).strip()) for n, parts in rows.items()}

    def report_row(self, experiment: str) -> str:
        """The HTML of ``experiment``'s row of the report's verdicts table."""
        page = (self.directory / "tmp" / "x.html").read_text()
        verdicts = page[page.index("id='summary'") : page.index("id='segments'")]
        start = verdicts.index(f"<tr><td>{experiment}</td>")
        return verdicts[start : verdicts.index("</tr>", start)]

    def effect(self, metric: str, experiment: str = "eta/v2") -> float:
        """``Δ metric`` of ``experiment`` in the report's verdicts table."""
        found = re.search(rf">{metric}: ([+-]\d+\.\d+) \[", self.report_row(experiment))
        assert found is not None, metric
        return float(found[1])


def run_demo(directory: Path, requests: int = REQUESTS) -> DemoRun:
    """``shadow-eval demo`` in ``directory`` (where its reports/ go)."""
    started = time.monotonic()
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(REPO)}
    env.pop("SHADOW_KAFKA_BOOTSTRAP", None)
    done = subprocess.run(
        shadow_eval_command(
            "demo", "--requests", str(requests), "--rate", "100", "--report", "tmp/x.html"
        ),
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    return DemoRun(
        done.returncode, done.stdout + done.stderr, time.monotonic() - started, directory
    )


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    return run_demo(tmp_path_factory.mktemp("demo"))


def test_demo_exits_cleanly_without_traceback(demo_run: DemoRun) -> None:
    assert demo_run.code == 0, demo_run.output[-3000:]
    assert "Traceback" not in demo_run.output
    assert "stopped the workers, the join agent and the broker" in demo_run.output
    assert re.search(r"live experiment page: http://127\.0\.0\.1:\d+/", demo_run.output)
    assert demo_run.seconds < 200, demo_run.seconds


def test_demo_rejects_the_worse_candidate_and_not_the_better(demo_run: DemoRun) -> None:
    verdicts = demo_run.verdicts()
    expected = {"diagnosis/v2", "diagnosis/v3", "diagnosis/v4", "eta/v2"}
    assert set(verdicts) == expected, demo_run.output[-3000:]
    assert verdicts["diagnosis/v3"][0] == "REJECT"
    decision, reason = verdicts["diagnosis/v2"]
    assert decision in ("PROMOTE", "CONTINUE")
    assert reason  # promoted or continuing, always with its reason
    assert "alerts raised" in demo_run.output and "worse-log-loss" in demo_run.output


def test_demo_does_not_promote_the_most_accurate_candidate_for_its_cpu(demo_run: DemoRun) -> None:
    decision, reason = demo_run.verdicts()["diagnosis/v4"]
    assert decision in ("REJECT", "CONTINUE"), demo_run.output[-3000:]
    assert "guardrail cpu_ms violated" in reason, reason
    assert demo_run.effect("log_loss", "diagnosis/v4") < 0  # more accurate...
    assert demo_run.effect("accuracy", "diagnosis/v4") > 0
    row = demo_run.report_row("diagnosis/v4")
    found = GUARDRAIL.search(row)  # ...and several times live's CPU per prediction
    assert found is not None, row
    low, margin = int(found[1]), int(found[3])
    assert margin == 300 and low > margin + 50, row  # clearly above the margin
    cpu = re.search(r"CPU [\d.]+ ms p50 / [\d.]+ p99 \(([\d.]+)x live\)", row)
    assert cpu is not None and float(cpu[1]) > 4.0, row
    costs = demo_run.output[demo_run.output.index("what each candidate costs") :]
    assert re.search(r"diagnosis/v4 +│ CPU [\d.]+ ms p50", costs), costs[:2000]
    assert "guardrail cpu_ms violated" not in demo_run.verdicts()["diagnosis/v2"][1]


def test_demo_rejects_the_early_eta_candidate_for_late_deliveries(demo_run: DemoRun) -> None:
    decision, reason = demo_run.verdicts()["eta/v2"]
    assert decision == "REJECT" and "late" in reason, demo_run.output[-3000:]
    assert demo_run.effect("abs_error") < 0  # better on the model metric...
    assert demo_run.effect("late") > 0  # ...and more late deliveries
    assert demo_run.effect("idle_minutes") < 0
    summary = demo_run.output[demo_run.output.index("shadow-eval demo: verdicts") :]
    for shown in ("Δ model metric", "Δ business KPIs", "decisions agree", "abs_error -",
                  "late +", "idle_minutes", "later-deliveries", "better-mae"):  # fmt: skip
        assert shown in summary, shown


def test_demo_writes_report_traffic_and_replay_command(demo_run: DemoRun) -> None:
    report = demo_run.directory / "tmp" / "x.html"
    page = report.read_text()
    assert page.count("data:image/png;base64,") >= 6
    assert "trajectory-log_loss" in page and "latency" in page
    assert "trajectory-late" in page and "trajectory-abs_error" in page
    traffic = demo_run.directory / "reports" / "demo-traffic.jsonl"
    records = [json.loads(line) for line in traffic.read_text().splitlines()]
    # diagnosis: live + 3 shadow + label; eta: inputs + live + shadow + label
    assert len(records) >= REQUESTS * 9
    inputs = [r for r in records if r["type"] == "input"]
    assert len(inputs) == REQUESTS and {r["model"] for r in inputs} == {"eta"}
    assert set(inputs[0]["numeric"]) == {"distance_km", "prep_minutes"}
    assert "traffic" in inputs[0]["categorical"] and "city" in inputs[0]["segments"]
    assert "shadow-eval replay reports/demo-traffic.jsonl --experiments" in demo_run.output


def test_demo_report_shows_kpis_beside_model_metrics_per_segment(demo_run: DemoRun) -> None:
    page = (demo_run.directory / "tmp" / "x.html").read_text()
    assert "Δ business KPIs [CI]" in page and "idle_minutes: " in page
    section = page[page.index("id='segments'") : page.index("id='alerts'")]
    for shown in ("<h3>eta/v2</h3>", "Δ late [CI]", "Δ abs_error [CI]", "Δ idle_minutes [CI]",
                  "decisions agree", "city=berlin", "city=paris", "city=madrid",
                  "country=DE"):  # fmt: skip
        assert shown in section, shown
    assert "later-deliveries" in page and "better-mae" in page


def test_demo_leaves_no_process_behind(demo_run: DemoRun) -> None:
    # `ps -ww -eo args` lists every process's whole command line, on Linux and macOS alike.
    listing = subprocess.run(
        ["ps", "-ww", "-eo", "args"], capture_output=True, text=True, check=True
    )
    leftovers = [line for line in listing.stdout.splitlines() if "shadow-eval-demo-" in line]
    assert leftovers == []
