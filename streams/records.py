"""Frozen, slotted dataclasses mirroring ``schemas/*.avsc`` field by field.

These are what shadow-eval code passes around; conversion to and from Avro happens only
in :mod:`streams.codec.convert`. ``tests/unit/test_records.py`` checks that every field
here matches its schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "Alert",
    "AlertState",
    "DeadLetter",
    "Decision",
    "ExpiryReason",
    "GroundTruth",
    "JoinEvent",
    "JoinEventBatch",
    "JoinKind",
    "JoinSlot",
    "MetricResult",
    "MetricsSnapshot",
    "ModelInput",
    "Prediction",
    "Record",
    "Role",
    "Verdict",
]

Label = float | str
"""A regression value or a class label."""


class Role(StrEnum):
    LIVE = "LIVE"
    SHADOW = "SHADOW"


class JoinKind(StrEnum):
    PAIRED = "PAIRED"
    LABELLED = "LABELLED"
    EXPIRED = "EXPIRED"


class ExpiryReason(StrEnum):
    """Why a request's join state timed out unmatched."""

    NO_SHADOW = "no_shadow"
    NO_LIVE = "no_live"
    NO_LABEL = "no_label"
    LABEL_UNKNOWN = "label_unknown"


class AlertState(StrEnum):
    FIRING = "FIRING"
    RESOLVED = "RESOLVED"


class Decision(StrEnum):
    PROMOTE = "PROMOTE"
    REJECT = "REJECT"
    CONTINUE = "CONTINUE"


@dataclass(frozen=True, slots=True)
class ModelInput:
    """One request's inputs.

    Examples
    --------
    >>> ModelInput("r1", "churn", 0, numeric={"age": 41.0}, categorical={"plan": "pro"}).numeric
    {'age': 41.0}
    """

    request_id: str
    model: str
    timestamp_ms: int
    numeric: Mapping[str, float] = field(default_factory=dict)
    categorical: Mapping[str, str] = field(default_factory=dict)
    segments: Mapping[str, str] = field(default_factory=dict)
    extra: Any = None
    """Free-form (nested) features: anything JSON can hold."""

    def feature_dict(self) -> dict[str, Any]:
        """Every feature in one dict, as candidate models and downstream functions get them.

        The keys of a dict ``extra`` come first, so named features win on a clash; any
        other ``extra`` sits under the key ``"extra"``.

        Examples
        --------
        >>> ModelInput("r1", "m", 0, {"age": 41.0}, {"plan": "pro"}, extra={"n": 1}).feature_dict()
        {'n': 1, 'age': 41.0, 'plan': 'pro'}
        """
        extra = self.extra
        if extra is None:
            features: dict[str, Any] = {}
        elif isinstance(extra, dict):
            features = dict(extra)
        else:
            features = {"extra": extra}
        features.update(self.numeric)
        features.update(self.categorical)
        return features


@dataclass(frozen=True, slots=True)
class Prediction:
    """One model's answer to one request (live or shadow).

    Examples
    --------
    >>> p = Prediction("r1", "churn", "v2", Role.SHADOW, 0, value="yes", latency_ms=3.5)
    >>> p.dedup_key
    ('r1', 'churn', 'v2', 'SHADOW')
    """

    request_id: str
    model: str
    version: str
    role: Role
    timestamp_ms: int
    value: Label | None = None
    probabilities: Mapping[str, float] | None = None
    latency_ms: float = 0.0
    error: str | None = None
    segments: Mapping[str, str] = field(default_factory=dict)
    # What the prediction cost (schema version 2; None: not measured, or a version 1
    # record). The worker fields describe the process that made a candidate prediction.
    cpu_ms: float | None = None
    worker: str | None = None
    worker_rss_mb: float | None = None
    worker_peak_mb: float | None = None
    load_s: float | None = None
    model_mb: float | None = None

    @property
    def dedup_key(self) -> tuple[str, str, str, str]:
        """Identifies this prediction; a redelivered copy has the same key."""
        return (self.request_id, self.model, self.version, self.role.value)


@dataclass(frozen=True, slots=True)
class GroundTruth:
    """The true value or class of one request, known later."""

    request_id: str
    model: str
    timestamp_ms: int
    value: Label


@dataclass(frozen=True, slots=True)
class JoinEvent:
    """A live and a candidate prediction of one request, with the label once known.

    EXPIRED events carry whichever side arrived and the ``reason``.
    """

    kind: JoinKind
    experiment: str
    request_id: str
    timestamp_ms: int
    live: Prediction | None
    candidate: Prediction | None
    segments: Mapping[str, str] = field(default_factory=dict)
    label: Label | None = None
    reason: str | None = None
    inputs: ModelInput | None = None
    """Carried only for experiments with downstream decision or KPI functions."""

    @property
    def dedup_key(self) -> str:
        """Identifies this event; a re-emitted copy has the same key."""
        return f"{self.experiment}\x1f{self.request_id}\x1f{self.kind.value}\x1f{self.reason or ''}"


@dataclass(frozen=True, slots=True)
class JoinEventBatch:
    """The join events of one experiment from one stage-1 transaction, in emission
    order: one record of ``<prefix>.join.events``."""

    events: tuple[JoinEvent, ...]


@dataclass(frozen=True, slots=True)
class JoinSlot:
    """Join stage 1 state of one request as the streaming join keeps it: the Avro bytes
    of what arrived, copied into events without decoding (:mod:`streams.join.slots`)."""

    model: str
    first_seen_ms: int
    segments: bytes = b"\x00"
    live: bytes | None = None
    candidates: Mapping[str, bytes] = field(default_factory=dict)
    inputs: bytes | None = None
    label: bytes | None = None
    closed: tuple[str, ...] = ()
    labelled: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MetricResult:
    """One test of one metric in one segment ('' is all traffic)."""

    metric: str
    test: str
    n: int
    segment: str = ""
    statistic: float | None = None
    pvalue: float | None = None
    evalue: float | None = None
    effect: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    live_value: float | None = None
    candidate_value: float | None = None


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """Periodic state of one experiment."""

    experiment: str
    model: str
    live_version: str
    candidate_version: str
    timestamp_ms: int
    counts: Mapping[str, int]
    results: tuple[MetricResult, ...]
    decision: str
    reason: str


@dataclass(frozen=True, slots=True)
class Alert:
    """A rule that started or stopped holding; ``dedup_key`` is stable across both."""

    dedup_key: str
    state: AlertState
    experiment: str
    rule: str
    severity: str
    direction: str
    result: MetricResult
    message: str
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class Verdict:
    """The promotion decision for one experiment, with the results it rests on."""

    experiment: str
    decision: Decision
    reason: str
    timestamp_ms: int
    primary: MetricResult | None = None
    guardrails: tuple[MetricResult, ...] = ()


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record no component could process, kept whole with the reason."""

    component: str
    source_topic: str
    source_partition: int
    source_offset: int
    error_type: str
    reason: str
    timestamp_ms: int
    key: bytes | None = None
    value: bytes | None = None


Record = (
    ModelInput
    | Prediction
    | GroundTruth
    | JoinEvent
    | JoinEventBatch
    | MetricResult
    | MetricsSnapshot
    | Alert
    | Verdict
    | DeadLetter
    | JoinSlot
)
