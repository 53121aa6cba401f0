"""Fuzz of the edges bad records go through: no crash, no record left uncounted.

The worker's micro-batch decoding (every consumed message becomes exactly one input, one
dead letter, one skip or one consumer error), stage 2's reading of join-event records
(a batch of events or a ``CodecError``, which is a dead letter) and the validity gate with
the Judge behind it (any prediction or label: each event counted, every invalid side
counted by reason, nothing non-finite fed to a statistic).
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from streams.codec import Codec, CodecError
from streams.join.experiments import ExperimentsFile
from streams.join.judge import Judge
from streams.join.stage_judge import events_of
from streams.join.validity import REASONS, label_problem, prediction_problem
from streams.records import GroundTruth, JoinEvent, JoinKind, ModelInput, Prediction, Role
from streams.worker.batch import assemble

CODEC = Codec()
floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
values = st.one_of(st.none(), floats, st.text(max_size=4), st.sampled_from(["0", "1", "7"]))
probabilities = st.one_of(
    st.none(), st.dictionaries(st.sampled_from(["0", "1", "x"]), floats, max_size=3)
)


class _Message:
    def __init__(self, value: bytes | None, offset: int) -> None:
        self._value, self._offset = value, offset

    def value(self) -> bytes | None:
        return self._value

    def key(self) -> bytes | None:
        return None

    def topic(self) -> str:
        return "t.inputs"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def error(self) -> Any:
        return None


def _payloads() -> st.SearchStrategy[bytes | None]:
    good = st.builds(
        lambda rid, x, model: CODEC.encode(ModelInput(rid, model, 0, {"x": x})),
        st.text(min_size=1, max_size=5),
        floats,
        st.sampled_from(["churn", "other"]),
    )
    other = st.builds(
        lambda rid: CODEC.encode(GroundTruth(rid, "churn", 0, "1")), st.text(max_size=5)
    )
    junk = st.binary(max_size=40)
    flipped = st.builds(lambda b, i: b[: i % max(len(b), 1)] + b"\xff", good, st.integers(0, 60))
    return st.one_of(st.none(), good, other, junk, flipped)


@settings(max_examples=150, deadline=None)
@given(st.lists(_payloads(), max_size=25))
def test_every_consumed_input_is_scored_dead_lettered_or_skipped(payloads: list[Any]) -> None:
    messages = [_Message(p, i) for i, p in enumerate(payloads)]
    batch = assemble(messages, CODEC, model_name="churn", max_bytes=10_000)
    assert len(batch.inputs) + len(batch.rejects) + batch.skipped == len(messages)
    assert all(math.isfinite(v) for r in batch.inputs for v in r.numeric.values())
    if messages:
        assert batch.next_offsets == {("t.inputs", 0): len(messages)}


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.binary(max_size=60), st.builds(
    lambda v: CODEC.encode(Prediction("r", "m", "v1", Role.LIVE, 0, v)), values
)))  # fmt: skip
def test_a_join_events_record_is_events_or_a_codec_error(data: bytes) -> None:
    try:
        events = events_of(CODEC.decode(data))
    except CodecError:
        return  # stage 2 dead-letters it
    assert all(isinstance(e, JoinEvent) for e in events)


TOML = """
[[experiments]]
name = "c"
model = "m"
live_version = "v1"
candidate = "v2"
task = "{task}"
{classes}
primary_metric = "{primary}"
min_samples = 1
"""
JUDGES = {
    task: ExperimentsFile.parse(
        TOML.format(
            task=task,
            classes='classes = ["0", "1"]' if task == "binary" else "",
            primary="abs_error" if task == "regression" else "correct",
        )
    )
    for task in ("regression", "binary", "multiclass")
}
side = st.tuples(values, probabilities, st.one_of(st.none(), st.just("timeout")), floats)


@settings(max_examples=40, deadline=None)
# An error prediction carrying a value too large to square: never scored.
@example(
    task="regression", events=[((0.0, None, None, 0.0), (1.35e154, None, "timeout", 0.0), 0.0)]
)
# A regression value whose squared error squares to infinity (2**256): invalid, not fed.
@example(task="regression", events=[((0.0, None, None, 0.0), (2.0**256, None, None, 0.0), 0.0)])
@given(
    task=st.sampled_from(sorted(JUDGES)),
    events=st.lists(st.tuples(side, side, st.one_of(st.none(), values)), min_size=1, max_size=6),
)
def test_the_gate_counts_every_invalid_side_and_feeds_nothing_nonfinite(
    task: str, events: list[Any]
) -> None:
    experiments = JUDGES[task]
    classes = experiments.experiments[0].classes
    judge = Judge(experiments)
    expected: dict[str, int] = {}
    for i, ((lv, lp, le, ll), (cv, cp, ce, cl), label) in enumerate(events):
        live = Prediction(f"r{i}", "m", "v1", Role.LIVE, i, lv, lp, ll, le)
        cand = Prediction(f"r{i}", "m", "v2", Role.SHADOW, i, cv, cp, cl, ce)
        for side_, version in ((live, "v1"), (cand, "v2")):
            problem = prediction_problem(side_, task, classes)
            assert problem is None or problem in REASONS
            if problem is not None:
                key = f"invalid:{version}:{problem}"
                expected[key] = expected.get(key, 0) + 1
        problem = label_problem(label, task, classes)
        assert problem is None or problem in REASONS
        if problem is not None:
            expected[f"invalid:label:{problem}"] = expected.get(f"invalid:label:{problem}", 0) + 1
        assert judge.apply(JoinEvent(JoinKind.PAIRED, "c", f"r{i}", i, live, cand))
        assert judge.apply(JoinEvent(JoinKind.LABELLED, "c", f"r{i}", i, live, cand, label=label))
    counts = judge.counts["c"]
    assert counts["paired"] == counts["labelled"] == len(events)
    assert {k: v for k, v in counts.items() if k.startswith("invalid:")} == expected
    # Only latencies (not gated: a number of any size is a latency) may be refused.
    assert set(judge.monitors["c"].nonfinite) <= {"latency_ms"}
