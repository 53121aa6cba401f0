"""What goes into an :class:`~streams.stats.monitor.ExperimentMonitor` and what comes out.

:class:`Observation` is one request as join stage 2 sees it; :class:`Evaluation` is what one
evaluation found, with its :class:`RuleAlert` transitions.  ``ALL`` names the overall segment,
``PROXY`` the suffix of a metric's label-free proxy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from streams.stats.results import TestResult
from streams.stats.verdict import VerdictResult

__all__ = ["ALL", "OTHER", "PROXY", "Evaluation", "Observation", "RuleAlert"]

ALL = "all"
PROXY = "~proxy"  # "<metric>~proxy": a label-free proxy of the metric, for its "ppi" estimate
OTHER = "__other__"


@dataclass(frozen=True, slots=True)
class Observation:
    """One request as seen by stage 2: per-metric (live, candidate) pairs and segment tags.

    Examples
    --------
    >>> obs = Observation(1_700_000_000_000, {"country": "FR"},
    ...                   {"correct": (1.0, 0.0), "latency_ms": (12.0, 15.5)},
    ...                   {"predicted_class": ("churn", "stay")})
    >>> obs.paired["latency_ms"]
    (12.0, 15.5)
    """

    timestamp_ms: int
    segments: Mapping[str, str] = field(default_factory=dict)
    paired: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    categorical: Mapping[str, tuple[str, str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RuleAlert:
    """A rule changed state (``FIRING`` or ``RESOLVED``) for one segment."""

    key: str
    state: str
    experiment: str
    rule: str
    metric: str
    segment: str
    severity: str
    timestamp_ms: int
    alpha: float
    result: TestResult
    message: str


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Everything one :meth:`ExperimentMonitor.evaluate` call found.

    ``results[metric][segment][test_key]``; ``rule_results[rule][segment]``; ``qvalues`` are
    Benjamini-Hochberg adjusted p-values of the fixed-horizon results, keyed
    ``(metric, segment, test_key)``; ``ebh`` the e-BH decisions over the sequential rules at the
    experiment alpha, keyed ``(rule, segment)``; ``firing`` the keys of alerts now firing.
    """

    experiment: str
    timestamp_ms: int
    counts: Mapping[str, int]
    results: Mapping[str, Mapping[str, Mapping[str, TestResult]]]
    rule_results: Mapping[str, Mapping[str, TestResult]]
    qvalues: Mapping[tuple[str, str, str], float]
    ebh: Mapping[tuple[str, str], bool]
    alerts: tuple[RuleAlert, ...]
    firing: tuple[str, ...]
    verdict: VerdictResult
    nonfinite: Mapping[str, int] = field(default_factory=dict)
