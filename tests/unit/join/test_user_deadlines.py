"""Decision, KPI and proxy functions run under a deadline: a hung one never holds stage 2."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from streams.join.experiments import ExperimentsFile
from streams.join.judge import Judge
from streams.records import JoinEvent, JoinKind, ModelInput, Prediction, Role

RELEASE = threading.Event()


def decide(inputs: dict[str, Any], prediction: Any) -> str:
    if inputs["x"] % 10 == 3:  # hangs on 10% of requests until released
        RELEASE.wait()
    return "high" if prediction > 1.0 else "low"


def kpis(inputs: dict[str, Any], outcome: Any, label: Any) -> dict[str, float]:
    return {"cost": 1.0 if outcome == "high" else 0.5}


TOML = f"""
[join]
user_timeout_s = 0.05

[[experiments]]
name = "eta"
model = "eta"
live_version = "v1"
candidate = "v2"
task = "regression"
decision = "{__name__}:decide"
kpis = ["{__name__}:kpis"]

[[experiments.metrics]]
name = "cost"
higher_is_better = false
"""


def _events(n: int) -> list[JoinEvent]:
    out = []
    for i in range(n):
        inputs = ModelInput(f"r{i}", "eta", i, {"x": float(i)})
        live = Prediction(f"r{i}", "eta", "v1", Role.LIVE, i, 0.5 + i % 2, None, 5.0)
        cand = Prediction(f"r{i}", "eta", "v2", Role.SHADOW, i, 1.5, None, 5.0)
        for kind in (JoinKind.PAIRED, JoinKind.LABELLED):
            out.append(JoinEvent(kind, "eta", f"r{i}", i, live, cand, label=1.0, inputs=inputs))
    return out


def test_a_hung_decision_function_is_counted_and_never_holds_the_stage() -> None:
    judge = Judge(ExperimentsFile.parse(TOML))
    threads = threading.active_count()
    try:
        started = time.perf_counter()
        for event in _events(100):
            judge.apply(event)
        elapsed = time.perf_counter() - started
        snapshot = judge.report("eta", now_ms=10**6).snapshot
        # Two hangs use up the function's two threads (2 deadlines); every later call of
        # it fails at once rather than waiting: the whole run takes a few deadlines.
        assert elapsed < 2.0
        assert threading.active_count() <= threads + 4  # two per user function, no more
        timeouts = snapshot.counts["timeouts:" + __name__ + ":decide"]
        assert timeouts >= 10 and snapshot.counts.get("errors:" + __name__ + ":decide", 0) == 0
        decided = judge.monitors["eta"].counts.get("decision", 0)
        assert decided + timeouts == 100  # each PAIRED request either decided or counted
    finally:
        RELEASE.set()


def raising_decide(inputs: dict[str, Any], prediction: Any) -> str:
    if inputs["x"] % 10 == 3:
        raise ValueError(f"cannot decide x={inputs['x']}\nsecond line")
    return "low"


def test_a_raising_user_function_is_counted_and_named_in_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    toml = TOML.replace(f'"{__name__}:decide"', f'"{__name__}:raising_decide"')
    judge = Judge(ExperimentsFile.parse(toml))
    with caplog.at_level(logging.WARNING, logger="streams.join"):
        for event in _events(40):
            judge.apply(event)
    counts = judge.report("eta", now_ms=10**6).snapshot.counts
    assert counts[f"errors:{__name__}:raising_decide"] == 4
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert (
        f"{__name__}:raising_decide" in lines[0] and "ValueError: cannot decide x=3.0" in lines[0]
    )
