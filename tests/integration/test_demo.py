"""``shadow-eval demo`` run as a new user would: one command, its own broker, a verdict.

The demo starts (and stops) its own Kafka broker, so this test does not use the session
broker. It runs once per module; the tests read its output and files.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from streams.demo.processes import shadow_eval_command

REPO = Path(__file__).resolve().parents[2]
ROW = re.compile(r"(diagnosis/v\d)\s*│[^\n]*?│\s*(PROMOTE|REJECT|CONTINUE)\s*│\s*([^│\n]*)")


@dataclass(frozen=True)
class DemoRun:
    code: int
    output: str
    seconds: float
    directory: Path

    def verdicts(self) -> dict[str, tuple[str, str]]:
        return {m[0]: (m[1], m[2].strip()) for m in ROW.findall(self.output)}


def run_demo(directory: Path, requests: int = 400) -> DemoRun:
    """``shadow-eval demo`` in ``directory`` (where its reports/ go)."""
    started = time.monotonic()
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(REPO)}
    env.pop("SHADOW_KAFKA_BOOTSTRAP", None)
    done = subprocess.run(
        shadow_eval_command(
            "demo", "--requests", str(requests), "--rate", "80", "--report", "tmp/x.html"
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
    assert demo_run.seconds < 200, demo_run.seconds


def test_demo_rejects_the_worse_candidate_and_not_the_better(demo_run: DemoRun) -> None:
    verdicts = demo_run.verdicts()
    assert set(verdicts) == {"diagnosis/v2", "diagnosis/v3"}, demo_run.output[-3000:]
    assert verdicts["diagnosis/v3"][0] == "REJECT"
    decision, reason = verdicts["diagnosis/v2"]
    assert decision in ("PROMOTE", "CONTINUE")
    assert reason  # promoted or continuing, always with its reason
    assert "alerts raised" in demo_run.output and "worse-log-loss" in demo_run.output


def test_demo_writes_report_traffic_and_replay_command(demo_run: DemoRun) -> None:
    report = demo_run.directory / "tmp" / "x.html"
    page = report.read_text()
    assert page.count("data:image/png;base64,") >= 4
    assert "trajectory-log_loss" in page and "latency" in page
    traffic = demo_run.directory / "reports" / "demo-traffic.jsonl"
    lines = traffic.read_text().splitlines()
    assert len(lines) >= 400 * 4  # live + 2 shadow + label per request
    assert "shadow-eval replay reports/demo-traffic.jsonl --experiments" in demo_run.output


def test_demo_leaves_no_process_behind(demo_run: DemoRun) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc")
    leftovers = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "shadow-eval-demo-" in cmdline:
            leftovers.append(cmdline)
    assert leftovers == []
