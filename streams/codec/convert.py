"""Boundary functions between :mod:`streams.records` dataclasses and Avro datums.

The only place that knows how a record is laid out on the wire. ModelInput features
are stored columnar: names joined by U+001F and numeric values packed as little-endian
float64. That keeps a 25-feature input faster than JSON to encode and decode while the
record stays plain Avro any consumer can read.
"""

from __future__ import annotations

import json
import math
import sys
from array import array
from collections.abc import Callable, Mapping
from typing import Any

from streams.records import (
    Alert,
    AlertState,
    DeadLetter,
    Decision,
    GroundTruth,
    JoinEvent,
    JoinEventBatch,
    JoinKind,
    JoinSlot,
    MetricResult,
    MetricsSnapshot,
    ModelInput,
    Prediction,
    Record,
    Role,
    Verdict,
)

__all__ = ["FEATURE_SEPARATOR", "FROM_AVRO", "TO_AVRO", "EncodeError"]

FEATURE_SEPARATOR = "\x1f"
_SWAP_BYTES = sys.byteorder != "little"

Datum = dict[str, Any]


class EncodeError(ValueError):
    """A record that cannot be written; the message names the field and the value."""


def _join_names(names: Mapping[str, Any], what: str) -> str:
    if "" in names:
        raise EncodeError(f"{what} feature names must not be empty")
    joined = FEATURE_SEPARATOR.join(names)
    if joined.count(FEATURE_SEPARATOR) != max(len(names) - 1, 0):
        bad = next(n for n in names if FEATURE_SEPARATOR in n)
        raise EncodeError(f"{what} feature name {bad!r} contains the reserved character U+001F")
    return joined


def _pack_numeric(numeric: Mapping[str, float]) -> bytes:
    try:
        packed = array("d", numeric.values())
    except TypeError:
        bad = next(
            (k, v)
            for k, v in numeric.items()
            if not isinstance(v, int | float) or isinstance(v, bool)
        )
        raise EncodeError(f"numeric feature {bad[0]!r} is not a number: {bad[1]!r}") from None
    if _SWAP_BYTES:
        packed.byteswap()
    return packed.tobytes()


def model_input_to_avro(r: ModelInput) -> Datum:
    categorical = r.categorical
    values = FEATURE_SEPARATOR.join(categorical.values())
    if values.count(FEATURE_SEPARATOR) != max(len(categorical) - 1, 0):
        raise EncodeError("a categorical feature value contains the reserved character U+001F")
    return {
        "request_id": r.request_id,
        "model": r.model,
        "timestamp_ms": r.timestamp_ms,
        "numeric_names": _join_names(r.numeric, "numeric"),
        "numeric_values": _pack_numeric(r.numeric),
        "categorical_names": _join_names(categorical, "categorical"),
        "categorical_values": values,
        "segments": r.segments,
        "extra_json": None if r.extra is None else json.dumps(r.extra, allow_nan=False),
    }


_NAME_CACHE_LIMIT = 4096
_split_cache: dict[str, list[str]] = {}


def _feature_names(joined: str) -> list[str]:
    """Split joined feature names; a service sends the same few name lists over and over."""
    names = _split_cache.get(joined)
    if names is None:
        if len(_split_cache) >= _NAME_CACHE_LIMIT:
            _split_cache.clear()
        names = _split_cache[joined] = joined.split(FEATURE_SEPARATOR) if joined else []
    return names


def model_input_from_avro(d: Datum) -> ModelInput:
    # The hot path of every worker: kept inline and allocation-light on purpose.
    values = array("d")
    values.frombytes(d["numeric_values"])
    if _SWAP_BYTES:
        values.byteswap()
    keys = _feature_names(d["numeric_names"])
    if len(keys) != len(values):
        raise ValueError(f"{len(keys)} numeric feature names but {len(values)} values")
    categorical: dict[str, str] = {}
    cat_keys = _feature_names(d["categorical_names"])
    if cat_keys:
        # Values may be empty strings, so only the names tell how many there are.
        cat_values = d["categorical_values"].split(FEATURE_SEPARATOR)
        if len(cat_keys) != len(cat_values):
            raise ValueError(
                f"{len(cat_keys)} categorical feature names but {len(cat_values)} values"
            )
        categorical = dict(zip(cat_keys, cat_values, strict=False))  # lengths checked
    extra = d["extra_json"]
    return ModelInput(
        d["request_id"],
        d["model"],
        d["timestamp_ms"],
        dict(zip(keys, values.tolist(), strict=False)),  # lengths checked above
        categorical,
        d["segments"],
        None if extra is None else json.loads(extra),
    )


def _label_to_avro(value: Any) -> float | str | None:
    """Numbers stay numbers; anything else (class labels) travels as text."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return str(value)


def prediction_to_avro(r: Prediction) -> Datum:
    return {
        "request_id": r.request_id,
        "model": r.model,
        "version": r.version,
        "role": r.role.value,
        "timestamp_ms": r.timestamp_ms,
        "value": _label_to_avro(r.value),
        "probabilities": r.probabilities,
        "latency_ms": r.latency_ms,
        "error": r.error,
        "cpu_ms": r.cpu_ms,
        "worker": r.worker,
        "worker_rss_mb": r.worker_rss_mb,
        "worker_peak_mb": r.worker_peak_mb,
        "load_s": r.load_s,
        "model_mb": r.model_mb,
        "segments": r.segments,
    }


def prediction_from_avro(d: Datum) -> Prediction:
    return Prediction(
        d["request_id"],
        d["model"],
        d["version"],
        Role(d["role"]),
        d["timestamp_ms"],
        d["value"],
        d["probabilities"],
        d["latency_ms"],
        d["error"],
        d["segments"],
        d.get("cpu_ms"),
        d.get("worker"),
        d.get("worker_rss_mb"),
        d.get("worker_peak_mb"),
        d.get("load_s"),
        d.get("model_mb"),
    )


def ground_truth_to_avro(r: GroundTruth) -> Datum:
    return {
        "request_id": r.request_id,
        "model": r.model,
        "timestamp_ms": r.timestamp_ms,
        "value": _label_to_avro(r.value),
    }


def ground_truth_from_avro(d: Datum) -> GroundTruth:
    return GroundTruth(d["request_id"], d["model"], d["timestamp_ms"], d["value"])


def join_event_to_avro(r: JoinEvent) -> Datum:
    return {
        "kind": r.kind.value,
        "experiment": r.experiment,
        "request_id": r.request_id,
        "timestamp_ms": r.timestamp_ms,
        "segments": r.segments,
        "live": None if r.live is None else prediction_to_avro(r.live),
        "candidate": None if r.candidate is None else prediction_to_avro(r.candidate),
        "label": _label_to_avro(r.label),
        "reason": r.reason,
        "inputs": None if r.inputs is None else model_input_to_avro(r.inputs),
    }


def join_event_batch_to_avro(r: JoinEventBatch) -> Datum:
    return {"events": [join_event_to_avro(e) for e in r.events]}


def join_event_batch_from_avro(d: Datum) -> JoinEventBatch:
    return JoinEventBatch(tuple(join_event_from_avro(e) for e in d["events"]))


def join_event_from_avro(d: Datum) -> JoinEvent:
    live, candidate, inputs = d["live"], d["candidate"], d["inputs"]
    return JoinEvent(
        JoinKind(d["kind"]),
        d["experiment"],
        d["request_id"],
        d["timestamp_ms"],
        None if live is None else prediction_from_avro(live),
        None if candidate is None else prediction_from_avro(candidate),
        d["segments"],
        d["label"],
        d["reason"],
        None if inputs is None else model_input_from_avro(inputs),
    )


def join_slot_to_avro(r: JoinSlot) -> Datum:
    return {
        "model": r.model,
        "first_seen_ms": r.first_seen_ms,
        "segments": r.segments,
        "live": r.live,
        "candidates": dict(r.candidates),
        "inputs": r.inputs,
        "label": r.label,
        "closed": list(r.closed),
        "labelled": list(r.labelled),
    }


def join_slot_from_avro(d: Datum) -> JoinSlot:
    return JoinSlot(
        d["model"],
        d["first_seen_ms"],
        d["segments"],
        d["live"],
        d["candidates"],
        d["inputs"],
        d["label"],
        tuple(d["closed"]),
        tuple(d["labelled"]),
    )


_OPTIONAL_FLOATS = (
    "statistic",
    "pvalue",
    "evalue",
    "effect",
    "ci_low",
    "ci_high",
    "live_value",
    "candidate_value",
)


def _finite_or_none(value: float | None) -> float | None:
    # NaN and infinities are legal Avro doubles but mean "no value" for a result;
    # None keeps downstream JSON valid.
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def metric_result_to_avro(r: MetricResult) -> Datum:
    datum: Datum = {"metric": r.metric, "test": r.test, "segment": r.segment, "n": r.n}
    for name in _OPTIONAL_FLOATS:
        datum[name] = _finite_or_none(getattr(r, name))
    return datum


def metric_result_from_avro(d: Datum) -> MetricResult:
    return MetricResult(
        d["metric"], d["test"], d["n"], d["segment"], *(d[name] for name in _OPTIONAL_FLOATS)
    )


def metrics_snapshot_to_avro(r: MetricsSnapshot) -> Datum:
    return {
        "experiment": r.experiment,
        "model": r.model,
        "live_version": r.live_version,
        "candidate_version": r.candidate_version,
        "timestamp_ms": r.timestamp_ms,
        "counts": r.counts,
        "results": [metric_result_to_avro(m) for m in r.results],
        "decision": r.decision,
        "reason": r.reason,
    }


def metrics_snapshot_from_avro(d: Datum) -> MetricsSnapshot:
    return MetricsSnapshot(
        d["experiment"],
        d["model"],
        d["live_version"],
        d["candidate_version"],
        d["timestamp_ms"],
        d["counts"],
        tuple(metric_result_from_avro(m) for m in d["results"]),
        d["decision"],
        d["reason"],
    )


def alert_to_avro(r: Alert) -> Datum:
    return {
        "dedup_key": r.dedup_key,
        "state": r.state.value,
        "experiment": r.experiment,
        "rule": r.rule,
        "severity": r.severity,
        "direction": r.direction,
        "result": metric_result_to_avro(r.result),
        "message": r.message,
        "timestamp_ms": r.timestamp_ms,
    }


def alert_from_avro(d: Datum) -> Alert:
    return Alert(
        d["dedup_key"],
        AlertState(d["state"]),
        d["experiment"],
        d["rule"],
        d["severity"],
        d["direction"],
        metric_result_from_avro(d["result"]),
        d["message"],
        d["timestamp_ms"],
    )


def verdict_to_avro(r: Verdict) -> Datum:
    return {
        "experiment": r.experiment,
        "decision": r.decision.value,
        "reason": r.reason,
        "primary": None if r.primary is None else metric_result_to_avro(r.primary),
        "guardrails": [metric_result_to_avro(m) for m in r.guardrails],
        "timestamp_ms": r.timestamp_ms,
    }


def verdict_from_avro(d: Datum) -> Verdict:
    primary = d["primary"]
    return Verdict(
        d["experiment"],
        Decision(d["decision"]),
        d["reason"],
        d["timestamp_ms"],
        None if primary is None else metric_result_from_avro(primary),
        tuple(metric_result_from_avro(m) for m in d["guardrails"]),
    )


def dead_letter_to_avro(r: DeadLetter) -> Datum:
    return {
        "component": r.component,
        "source_topic": r.source_topic,
        "source_partition": r.source_partition,
        "source_offset": r.source_offset,
        "key": r.key,
        "value": r.value,
        "error_type": r.error_type,
        "reason": r.reason,
        "timestamp_ms": r.timestamp_ms,
    }


def dead_letter_from_avro(d: Datum) -> DeadLetter:
    return DeadLetter(
        d["component"],
        d["source_topic"],
        d["source_partition"],
        d["source_offset"],
        d["error_type"],
        d["reason"],
        d["timestamp_ms"],
        d["key"],
        d["value"],
    )


# Full Avro name -> (record class, to_avro, from_avro).
TO_AVRO: dict[type[Any], tuple[str, Callable[[Any], Datum]]] = {
    ModelInput: ("dev.shadoweval.ModelInput", model_input_to_avro),
    Prediction: ("dev.shadoweval.Prediction", prediction_to_avro),
    GroundTruth: ("dev.shadoweval.GroundTruth", ground_truth_to_avro),
    JoinEvent: ("dev.shadoweval.JoinEvent", join_event_to_avro),
    JoinEventBatch: ("dev.shadoweval.JoinEventBatch", join_event_batch_to_avro),
    MetricResult: ("dev.shadoweval.MetricResult", metric_result_to_avro),
    MetricsSnapshot: ("dev.shadoweval.MetricsSnapshot", metrics_snapshot_to_avro),
    Alert: ("dev.shadoweval.Alert", alert_to_avro),
    Verdict: ("dev.shadoweval.Verdict", verdict_to_avro),
    DeadLetter: ("dev.shadoweval.DeadLetter", dead_letter_to_avro),
    JoinSlot: ("dev.shadoweval.JoinSlot", join_slot_to_avro),
}

FROM_AVRO: dict[str, tuple[type[Any], Callable[[Datum], Record]]] = {
    "dev.shadoweval.ModelInput": (ModelInput, model_input_from_avro),
    "dev.shadoweval.Prediction": (Prediction, prediction_from_avro),
    "dev.shadoweval.GroundTruth": (GroundTruth, ground_truth_from_avro),
    "dev.shadoweval.JoinEvent": (JoinEvent, join_event_from_avro),
    "dev.shadoweval.JoinEventBatch": (JoinEventBatch, join_event_batch_from_avro),
    "dev.shadoweval.MetricResult": (MetricResult, metric_result_from_avro),
    "dev.shadoweval.MetricsSnapshot": (MetricsSnapshot, metrics_snapshot_from_avro),
    "dev.shadoweval.Alert": (Alert, alert_from_avro),
    "dev.shadoweval.Verdict": (Verdict, verdict_from_avro),
    "dev.shadoweval.DeadLetter": (DeadLetter, dead_letter_from_avro),
    "dev.shadoweval.JoinSlot": (JoinSlot, join_slot_from_avro),
}
