"""The validity gate: invalid predictions and labels are left out, counted and judged."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import pytest

from streams.join.experiments import ExperimentsFile
from streams.join.judge import Judge
from streams.join.validity import label_problem, prediction_problem
from streams.records import JoinEvent, JoinKind, Prediction, Role

TOML = """
[[experiments]]
name = "churn"
model = "churn"
live_version = "v1"
candidate = "v2"
task = "binary"
classes = ["0", "1"]
positive_class = "1"
primary_metric = "correct"
min_samples = 50

[[experiments]]
name = "eta"
model = "eta"
live_version = "v1"
candidate = "v2"
task = "regression"
primary_metric = "abs_error"
min_samples = 50
"""
NAN, INF = math.nan, math.inf


def _prediction(version: str, value: Any, probabilities: Any = None) -> Prediction:
    role = Role.LIVE if version == "v1" else Role.SHADOW
    return Prediction("r", "m", version, role, 0, value, probabilities, 5.0)


def _regression(
    n: int, bias: float, spoil: Callable[[int, float], Any], seed: int = 1
) -> list[JoinEvent]:
    """PAIRED and LABELLED events of ``n`` requests; ``spoil(i, value)`` is the candidate's."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        truth = rng.uniform(0, 10)
        live = Prediction(f"r{i}", "eta", "v1", Role.LIVE, i, truth + rng.gauss(0, 1), None, 5.0)
        value = spoil(i, truth + bias + rng.gauss(0, 1))
        cand = Prediction(f"r{i}", "eta", "v2", Role.SHADOW, i, value, None, 5.0)
        out.append(JoinEvent(JoinKind.PAIRED, "eta", f"r{i}", i, live, cand))
        out.append(JoinEvent(JoinKind.LABELLED, "eta", f"r{i}", i, live, cand, label=truth))
    return out


def _judge(events: list[JoinEvent], **table: Any) -> tuple[Judge, Any]:
    text = TOML + "".join(f"{k} = {v}\n" for k, v in table.items())  # into the last: "eta"
    judge = Judge(ExperimentsFile.parse(text))
    for event in events:
        judge.apply(event)
    return judge, judge.report("eta", now_ms=10**9)


@pytest.mark.parametrize(
    ("value", "probabilities", "task", "reason"),
    [
        (1.5, None, "regression", None),
        (3, None, "regression", None),
        ("1.5", None, "regression", "wrong_type"),
        (NAN, None, "regression", "nonfinite"),
        (-INF, None, "regression", "nonfinite"),
        (None, None, "regression", "missing"),
        ("1", {"1": 0.8, "0": 0.2}, "binary", None),
        (1.0, None, "binary", None),
        ("2", None, "binary", "unknown_class"),
        ("1", {"1": 0.8, "2": 0.2}, "binary", "unknown_class"),
        ("1", {"1": 0.9, "0": 0.2}, "binary", "bad_probabilities"),
        ("1", {"1": 1.2, "0": -0.2}, "binary", "bad_probabilities"),
        ("1", {"1": NAN, "0": 0.2}, "binary", "nonfinite"),
        ("1", {}, "binary", "bad_probabilities"),
        (NAN, None, "multiclass", "nonfinite"),
    ],
)
def test_prediction_problems(value: Any, probabilities: Any, task: str, reason: Any) -> None:
    classes = None if task == "multiclass" else {"0", "1"}
    assert prediction_problem(_prediction("v2", value, probabilities), task, classes) == reason


def test_an_error_prediction_is_an_error_not_an_invalid_one() -> None:
    failed = Prediction("r", "m", "v2", Role.SHADOW, 0, None, None, 5.0, "timeout")
    assert prediction_problem(failed, "regression") is None
    assert label_problem("x", "regression") == "wrong_type"
    assert label_problem(NAN, "regression") == "nonfinite"
    assert label_problem("7", "binary", {"0", "1"}) == "unknown_class"


def test_nan_inf_and_text_do_not_change_the_verdict_and_are_counted() -> None:
    # The replay: a clearly worse regression candidate is rejected with an alert;
    # with 1% NaN, 1% inf and 1% text among its predictions it still is, and every bad
    # prediction is counted by reason, none reaching a statistic.
    clean = _judge(_regression(3000, 1.5, lambda i, v: v))[1]

    def spoil(i: int, value: float) -> Any:
        return {0: NAN, 1: INF, 2: "1.5"}.get(i % 100, value)

    judge, dirty = _judge(_regression(3000, 1.5, spoil))
    assert clean.snapshot.decision == dirty.snapshot.decision == "reject"
    assert {a.rule for a in clean.alerts} == {"default-abs_error"}
    assert {a.rule for a in dirty.alerts} == {"default-abs_error", "invalid_predictions"}
    counts = dirty.snapshot.counts
    assert counts["invalid:v2:nonfinite"] == 60 and counts["invalid:v2:wrong_type"] == 30
    assert dirty.evaluation.nonfinite == {}  # the gate stopped them before the statistics
    abs_error = {r.test: r for r in dirty.snapshot.results if r.metric == "abs_error"}
    assert abs_error["asymptotic_cs"].n == 2910 and abs_error["asymptotic_cs"].ci_low is not None
    assert judge.invalid == {("eta", "v2", "nonfinite"): 60, ("eta", "v2", "wrong_type"): 30}


def test_the_invalid_predictions_rule_fires_and_the_verdict_does_not_promote() -> None:
    # A better candidate (no bias against live's noise) that answers NaN on 5% of requests.
    def better(bias: float, share: int) -> list[JoinEvent]:
        events = _regression(3000, bias, lambda i, v: NAN if i % 100 < share else v)
        # Live is worse: shift its predictions by 2.
        return [
            JoinEvent(e.kind, e.experiment, e.request_id, e.timestamp_ms,
                      _shift(e.live, 2.0), e.candidate, label=e.label)
            for e in events
        ]  # fmt: skip

    _, bad = _judge(better(0.0, 5))
    assert bad.snapshot.decision == "continue"
    assert "not promoted" in bad.snapshot.reason and "max_invalid_share" in bad.snapshot.reason
    assert "invalid_predictions" in {a.rule for a in bad.alerts}
    _, good = _judge(better(0.0, 0))
    assert good.snapshot.decision == "promote" and not good.alerts
    # A looser margin lets the 5% one through; the rule still warns.
    _, loose = _judge(better(0.0, 5), max_invalid_share=0.1)
    assert loose.snapshot.decision == "promote"
    assert "invalid_predictions" in {a.rule for a in loose.alerts}


def _shift(prediction: Prediction | None, by: float) -> Prediction:
    assert prediction is not None and isinstance(prediction.value, float)
    p = prediction
    return Prediction(p.request_id, p.model, p.version, p.role, p.timestamp_ms,
                      p.value + by, None, p.latency_ms)  # fmt: skip


def test_invalid_classes_probabilities_and_labels_are_left_out() -> None:
    judge = Judge(ExperimentsFile.parse(TOML))
    probabilities = {"1": 0.7, "0": 0.3}
    cases = [
        ("1", probabilities, "1"),  # valid
        ("maybe", None, "1"),  # unknown class
        ("1", {"1": 0.7, "0": 0.7}, "0"),  # does not sum to 1
        ("1", probabilities, "7"),  # unknown label
        ("1", probabilities, NAN),  # non-finite label
    ]
    for i, (value, probs, label) in enumerate(cases):
        live = Prediction(f"r{i}", "churn", "v1", Role.LIVE, i, "1", probabilities, 5.0)
        cand = Prediction(f"r{i}", "churn", "v2", Role.SHADOW, i, value, probs, 5.0)
        for kind in (JoinKind.PAIRED, JoinKind.LABELLED):
            judge.apply(JoinEvent(kind, "churn", f"r{i}", i, live, cand, label=label))
    counts = judge.report("churn", 10**9).snapshot.counts
    assert counts["invalid:v2:unknown_class"] == counts["invalid:v2:bad_probabilities"] == 1
    assert counts["invalid:label:unknown_class"] == counts["invalid:label:nonfinite"] == 1
    monitor = judge.monitors["churn"]
    assert monitor.counts["correct"] == 1  # only the valid request with a valid label
    assert monitor.counts["predicted_class"] == 3 and monitor.counts["invalid"] == 5
    assert monitor.invalid == [5, 0.0, 2.0]
