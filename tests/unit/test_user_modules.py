"""A user module that raises at import (issue 17, item 5): ``worker``, ``join`` and
``replay`` stop at start-up with one error line naming the module, the function and the
exception's first line, and no traceback."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from streams.cli import main

BROKEN = {
    "RuntimeError": 'raise RuntimeError("no GPU found\\nsecond line")\n',
    "SyntaxError": "def f(:\n    pass\n",
}
EXPERIMENT = """
[[experiments]]
name = "churn-v2"
model = "churn"
live_version = "v1"
candidate = "v2"
task = "binary"
{key} = {value}
"""


def _module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> str:
    name = f"user_{kind.lower()}_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(BROKEN[kind])
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def _one_error_line(output: str, *needles: str) -> None:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert "Traceback" not in output and lines[0].startswith("Error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]


def _first_line(kind: str) -> str:
    return "RuntimeError: no GPU found" if kind == "RuntimeError" else "SyntaxError: "


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_worker_model_module_raising_at_import(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = _module(tmp_path, monkeypatch, kind)
    result = CliRunner().invoke(main, ["worker", "--model", f"{name}:predict", "--version", "v2"])
    assert result.exit_code == 1
    _one_error_line(result.output, f"module {name}", "predict", _first_line(kind))
    assert "second line" not in result.output


@pytest.mark.parametrize("command", ["join", "replay"])
@pytest.mark.parametrize(("key", "kind"), [("decision", "RuntimeError"), ("kpis", "SyntaxError")])
def test_join_and_replay_decision_or_kpi_module_raising_at_import(
    command: str, key: str, kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = _module(tmp_path, monkeypatch, kind)
    spec = f'"{name}:decide"' if key == "decision" else f'["{name}:costs"]'
    experiments = tmp_path / "experiments.toml"
    experiments.write_text(EXPERIMENT.format(key=key, value=spec))
    traffic = tmp_path / "traffic.jsonl"
    traffic.write_text("")
    args = ["--experiments", str(experiments)]
    if command == "join":
        args += ["--bootstrap", "127.0.0.1:9"]
    else:
        args.append(str(traffic))
    result = CliRunner().invoke(main, [command, *args])
    assert result.exit_code == 1, result.output
    function = "decide" if key == "decision" else "costs"
    _one_error_line(result.output, f"module {name}", function, _first_line(kind), key)
