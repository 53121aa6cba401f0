"""``shadow-eval replay`` of traffic recorded from a streaming run gives the same verdicts.

The streaming run is the demo (real broker, worker and join processes); its recorder
logs the traffic as consumed from the topics. Replaying that log offline -- as JSON Lines
and converted to Avro container files -- must reach the streaming path's verdicts.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from streams.demo.processes import shadow_eval_command
from streams.records import Prediction
from streams.replay import read_traffic, write_avro
from tests.integration.test_demo import DemoRun, run_demo


@pytest.fixture(scope="module")
def streamed(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    run = run_demo(tmp_path_factory.mktemp("replay"), requests=300)
    assert run.code == 0, run.output[-3000:]
    return run


def _replay(directory: Path, *files: Path) -> dict[str, str]:
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
    return {row["experiment"]: row["decision"].upper() for row in payload["experiments"]}


def test_replay_of_jsonl_matches_the_streaming_verdicts(streamed: DemoRun) -> None:
    streaming = {name: decision for name, (decision, _) in streamed.verdicts().items()}
    assert streaming["diagnosis/v3"] == "REJECT"
    traffic = streamed.directory / "reports" / "demo-traffic.jsonl"
    assert _replay(streamed.directory, traffic) == streaming


def test_replay_of_avro_matches_the_jsonl_replay(streamed: DemoRun) -> None:
    reports = streamed.directory / "reports"
    records = read_traffic([reports / "demo-traffic.jsonl"])
    write_avro(reports / "p.avro", [r for r in records if isinstance(r, Prediction)])
    write_avro(reports / "g.avro", [r for r in records if not isinstance(r, Prediction)])
    from_avro = _replay(streamed.directory, reports / "p.avro", reports / "g.avro")
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
