"""The checkpoint format: exact, keeps shared objects shared, and builds nothing but data
and the judge's own classes."""

from __future__ import annotations

import doctest
import math
import pickle
import random
import re
import struct
from collections import Counter, deque
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import streams.join.state_codec
from streams.join.state_codec import CLASSES, dumps, loads
from streams.stats import ExperimentMonitor, Observation
from streams.stats.catalog import TEST_KINDS

METRIC_OF_KIND = {
    "paired": "abs_error",
    "binary": "correct",
    "distribution": "prediction",
    "categorical": "predicted_class",
}


def _every_test() -> dict[str, Any]:
    """An experiment with a rule for every test, windowed by count and by time, segments,
    a bounded guardrail and a prediction-powered estimate: every class a state holds."""
    rules = []
    for test, kinds in TEST_KINDS.items():
        for window in ({"window": 50}, {"window_seconds": 30.0}):
            rule = {"name": f"{test}-{len(rules)}", "metric": METRIC_OF_KIND[kinds[0]]}
            rules.append({**rule, "test": test, "segments": ["device"], "min_samples": 5})
            if test in ("msprt", "asymptotic_cs", "quantile_cs"):
                break  # cumulative: no window
            rules[-1].update(window)
    return {
        "name": "all",
        "primary_metric": "log_loss",
        "proxies": ["log_loss"],
        "ppi_look_every": 20,
        "guardrails": [{"metric": "correct", "margin": 0.05}, {"metric": "latency_ms"}],
        "segments": ["device"],
        "min_samples": 5,
        "window_seconds": 40.0,
        "rules": rules,
    }


def _observations(rng: random.Random, start: int, n: int) -> list[Observation]:
    out = []
    for i in range(start, start + n):
        live, cand = rng.gauss(0, 1), rng.gauss(0.3, 1)
        paired: dict[str, tuple[float, float]] = {
            "abs_error": (abs(live), abs(cand)),
            "correct": (float(rng.random() < 0.8), float(rng.random() < 0.7)),
            "prediction": (live, cand),
            "latency_ms": (rng.expovariate(0.1), rng.expovariate(0.08)),
            "log_loss~proxy": (rng.random(), rng.random() + 0.1),
        }
        if rng.random() < 0.3:
            paired["log_loss"] = (rng.random(), rng.random() + 0.05)
        classes = ("a", "b", "c")
        categorical = {"predicted_class": (rng.choice(classes), rng.choice(classes))}
        device = rng.choice(("mobile", "desktop"))
        out.append(Observation(i * 700, {"device": device}, paired, categorical))
    return out


def test_every_statistic_a_monitor_holds_goes_on_exactly_after_a_round_trip() -> None:
    rng = random.Random(3)
    monitor = ExperimentMonitor(_every_test())
    for obs in _observations(rng, 0, 400):
        monitor.update(obs)
    monitor.evaluate(400 * 700)
    decoded = loads(dumps(monitor))
    copied = pickle.loads(pickle.dumps(monitor))  # the reference copy
    battery = decoded._battery["abs_error"]
    assert battery.window is not None
    assert all(any(s is t for t in battery.tests.values()) for s in battery.window.stats)
    for obs in _observations(rng, 400, 300):
        decoded.update(obs)
        copied.update(obs)
    got, expected = decoded.evaluate(700 * 700), copied.evaluate(700 * 700)
    assert repr(got) == repr(expected)
    assert expected.results["log_loss"]["all"]["ppi"].n > 0
    assert {r.test for r in monitor.cfg.rules} == set(TEST_KINDS)
    # and the table lists no class more than a state needs
    named = set(re.findall(r'"o":"([^"]+)"', dumps(decoded).partition(b"\n")[0].decode()))
    assert named | {"streams.join.judge.ExperimentState"} == {
        f"{c.__module__}.{c.__qualname__}" for c in CLASSES
    }


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=5)
)
KEYS = st.integers() | st.text(max_size=3) | st.tuples(st.text(max_size=2), st.integers())
DATA = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=12)
        | st.lists(st.floats(), min_size=8, max_size=20)  # packed
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(KEYS, inner, max_size=4)
        | st.dictionaries(st.text(max_size=3), st.integers(), max_size=4).map(Counter)
        | st.sets(KEYS, max_size=4)
        | st.frozensets(st.integers(), max_size=4)
        | st.builds(deque, st.lists(inner, max_size=10), st.none() | st.integers(10, 12))
        | st.lists(st.floats(), max_size=6).map(lambda v: np.array(v, dtype=np.float64))
    ),
    max_leaves=30,
)


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, np.ndarray):
        return a.tobytes() == b.tobytes()
    if isinstance(a, dict):
        return len(a) == len(b) and all(
            _same(k, k2) and _same(v, v2)
            for (k, v), (k2, v2) in zip(a.items(), b.items(), strict=True)
        )
    if isinstance(a, (set, frozenset)):
        return a == b
    if isinstance(a, (list, tuple, deque)):
        same_maxlen = not isinstance(a, deque) or a.maxlen == b.maxlen
        return same_maxlen and len(a) == len(b) and all(map(_same, a, b))
    return bool(a == b)


@settings(max_examples=150, deadline=None)
@given(DATA)
def test_data_round_trips_exactly(value: Any) -> None:
    assert _same(loads(dumps(value)), value)


def test_an_object_reached_twice_is_one_object_after_decoding() -> None:
    inner = [1.0, 2.0]
    window = deque([inner, inner], maxlen=3)
    back = loads(dumps({"a": window, "b": (window, inner)}))
    assert back["a"] is back["b"][0] and back["a"][0] is back["a"][1] is back["b"][1]


@pytest.mark.parametrize(
    "value",
    [lambda: 0, object(), np.array([1, 2]), np.float32(1.0), np.float64(1.0), b"x", print],
)
def test_anything_else_is_refused_when_written(value: object) -> None:
    with pytest.raises(TypeError, match="not a checkpoint class"):
        dumps({"state": [value]})


@pytest.mark.parametrize(
    "data",
    [
        b'{"o": "builtins.eval", "v": ["1"]}',
        b'{"o": "subprocess.Popen", "v": [["true"]]}',
        b'{"o": "streams.join.checkpoints.Checkpoints", "v": {}}',
        b'{"x": 1}',
        b'{"r": 5}',
        b'[[1.0], {"r": -1}]',
        b'{"t": [{"r": 0}]}',
        b'{"o": "streams.stats.paired.PairedT", "v": {"t": [{"d": [1, 2]}, null]}}',
        b'{"F": [0, 3]}\n\x00\x00',
        b'{"F": [2, 1]}\n' + bytes(8),
        b"[" * 100_000,
    ],
)
def test_a_file_naming_anything_else_or_malformed_is_refused(data: bytes) -> None:
    with pytest.raises((ValueError, LookupError, TypeError, AttributeError, RecursionError)):
        loads(data)


def test_docstring_examples() -> None:
    assert doctest.testmod(streams.join.state_codec).failed == 0
