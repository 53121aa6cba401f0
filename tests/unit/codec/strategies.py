"""Hypothesis strategies that build every record type with realistic ML payloads."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import strategies as st

from streams.records import (
    Alert,
    AlertState,
    DeadLetter,
    Decision,
    ExpiryReason,
    GroundTruth,
    JoinEvent,
    JoinEventBatch,
    JoinKind,
    MetricResult,
    MetricsSnapshot,
    ModelInput,
    Prediction,
    Role,
    Verdict,
)

text = st.text(max_size=20)
names = st.text(min_size=1, max_size=12).filter(lambda s: "\x1f" not in s)
category = st.text(max_size=10).filter(lambda s: "\x1f" not in s)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
timestamps = st.integers(min_value=0, max_value=2**62)
labels = st.one_of(finite, text)
segments = st.dictionaries(names, text, max_size=3)
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), finite, text)
free_form: st.SearchStrategy[Any] = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

model_inputs = st.builds(
    ModelInput,
    request_id=text,
    model=text,
    timestamp_ms=timestamps,
    numeric=st.dictionaries(names, finite, max_size=30),
    categorical=st.dictionaries(names, category, max_size=8),
    segments=segments,
    extra=st.one_of(st.none(), st.dictionaries(st.text(max_size=8), free_form, max_size=4)),
)

predictions = st.builds(
    Prediction,
    request_id=text,
    model=text,
    version=text,
    role=st.sampled_from(Role),
    timestamp_ms=timestamps,
    value=st.one_of(st.none(), labels),
    probabilities=st.one_of(st.none(), st.dictionaries(text, finite, max_size=5)),
    latency_ms=finite,
    error=st.one_of(st.none(), text),
    segments=segments,
    cpu_ms=st.one_of(st.none(), finite),
    worker=st.one_of(st.none(), text),
    worker_rss_mb=st.one_of(st.none(), finite),
    worker_peak_mb=st.one_of(st.none(), finite),
    load_s=st.one_of(st.none(), finite),
    model_mb=st.one_of(st.none(), finite),
)

ground_truths = st.builds(
    GroundTruth, request_id=text, model=text, timestamp_ms=timestamps, value=labels
)

join_events = st.builds(
    JoinEvent,
    kind=st.sampled_from(JoinKind),
    experiment=text,
    request_id=text,
    timestamp_ms=timestamps,
    live=st.one_of(st.none(), predictions),
    candidate=st.one_of(st.none(), predictions),
    segments=segments,
    label=st.one_of(st.none(), labels),
    reason=st.one_of(st.none(), st.sampled_from(ExpiryReason)).map(lambda r: r and r.value),
    inputs=st.one_of(st.none(), model_inputs),
)


def _paired_events(shared: dict[str, str]) -> st.SearchStrategy[JoinEvent]:
    with_segments = st.one_of(
        st.none(), predictions.map(lambda p: replace(p, segments=dict(shared)))
    )
    return st.builds(
        JoinEvent,
        kind=st.sampled_from(JoinKind),
        experiment=text,
        request_id=text,
        timestamp_ms=timestamps,
        live=with_segments,
        candidate=with_segments,
        segments=st.just(shared),
        label=st.one_of(st.none(), labels),
        reason=st.one_of(st.none(), st.sampled_from(ExpiryReason)).map(lambda r: r and r.value),
        inputs=st.one_of(st.none(), model_inputs.map(lambda m: replace(m, segments=dict(shared)))),
    )


# What join stage 1 emits: the nested records carry the request's segments again.
paired_events = segments.flatmap(_paired_events)
join_event_batches = st.lists(st.one_of(join_events, paired_events), max_size=4).map(
    lambda events: JoinEventBatch(tuple(events))
)

optional_float = st.one_of(st.none(), finite)
metric_results = st.builds(
    MetricResult,
    metric=text,
    test=text,
    n=st.integers(0, 2**40),
    segment=text,
    statistic=optional_float,
    pvalue=optional_float,
    evalue=optional_float,
    effect=optional_float,
    ci_low=optional_float,
    ci_high=optional_float,
    live_value=optional_float,
    candidate_value=optional_float,
)

snapshots = st.builds(
    MetricsSnapshot,
    experiment=text,
    model=text,
    live_version=text,
    candidate_version=text,
    timestamp_ms=timestamps,
    counts=st.dictionaries(text, st.integers(0, 2**40), max_size=6),
    results=st.lists(metric_results, max_size=4).map(tuple),
    decision=text,
    reason=text,
)

alerts = st.builds(
    Alert,
    dedup_key=text,
    state=st.sampled_from(AlertState),
    experiment=text,
    rule=text,
    severity=st.sampled_from(["info", "warning", "critical"]),
    direction=st.sampled_from(["worse", "better", "different"]),
    result=metric_results,
    message=text,
    timestamp_ms=timestamps,
)

verdicts = st.builds(
    Verdict,
    experiment=text,
    decision=st.sampled_from(Decision),
    reason=text,
    timestamp_ms=timestamps,
    primary=st.one_of(st.none(), metric_results),
    guardrails=st.lists(metric_results, max_size=3).map(tuple),
)

dead_letters = st.builds(
    DeadLetter,
    component=st.sampled_from(["worker", "join", "hook"]),
    source_topic=text,
    source_partition=st.integers(0, 2**31 - 1),
    source_offset=st.integers(0, 2**62),
    error_type=text,
    reason=text,
    timestamp_ms=timestamps,
    key=st.one_of(st.none(), st.binary(max_size=16)),
    value=st.one_of(st.none(), st.binary(max_size=64)),
)

ALL_RECORDS = {
    "ModelInput": model_inputs,
    "Prediction": predictions,
    "GroundTruth": ground_truths,
    "JoinEvent": join_events,
    "MetricResult": metric_results,
    "MetricsSnapshot": snapshots,
    "Alert": alerts,
    "Verdict": verdicts,
    "DeadLetter": dead_letters,
}
