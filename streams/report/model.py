"""What a run produced: snapshot trajectories, alerts, verdicts and latencies."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from streams.records import Alert, MetricResult, MetricsSnapshot, Prediction, Role, Verdict

__all__ = ["SEQUENTIAL_TESTS", "RunResult", "TrajectoryPoint", "find_result", "trajectory_points"]

#: the per-metric sequential results of a snapshot (0/1 and symmetric metrics: msprt)
SEQUENTIAL_TESTS = ("msprt", "asymptotic_cs")


def find_result(
    snapshot: MetricsSnapshot, metric: str, test: str | None = None, segment: str = ""
) -> MetricResult | None:
    """The result of ``test`` (default: the metric's sequential test, ``msprt`` or
    ``asymptotic_cs``) on ``metric`` in ``segment`` ('' = all traffic), if any.

    Examples
    --------
    >>> s = MetricsSnapshot("e", "m", "v1", "v2", 0, {}, (MetricResult("correct", "msprt", 9),),
    ...                     "continue", "")
    >>> find_result(s, "correct").n
    9
    >>> find_result(s, "log_loss") is None
    True
    """
    for result in snapshot.results:
        named = result.test == test if test is not None else result.test in SEQUENTIAL_TESTS
        if result.metric == metric and named and result.segment == segment:
            return result
    return None


class TrajectoryPoint(NamedTuple):
    """One snapshot of a metric's trajectory: NaN where a value is unknown or not finite."""

    seconds: float
    effect: float
    low: float
    high: float


def _number(value: float | None) -> float:
    return math.nan if value is None or not math.isfinite(value) else value


def trajectory_points(
    snapshots: Sequence[MetricsSnapshot], metric: str, start_ms: int, segment: str = ""
) -> list[TrajectoryPoint]:
    """The effect (candidate - live) of ``metric`` and its anytime-valid interval in each
    snapshot that has data on it; what both the report's PNGs and the live page plot.

    Examples
    --------
    >>> s = MetricsSnapshot("e", "m", "v1", "v2", 3000, {},
    ...                     (MetricResult("correct", "msprt", 9, effect=0.1, ci_low=-0.2),),
    ...                     "continue", "")
    >>> trajectory_points([s], "correct", 1000)
    [TrajectoryPoint(seconds=2.0, effect=0.1, low=-0.2, high=nan)]
    """
    points = []
    for snapshot in snapshots:
        result = find_result(snapshot, metric, segment=segment)
        if result is not None and result.n > 0:
            points.append(
                TrajectoryPoint(
                    (snapshot.timestamp_ms - start_ms) / 1000,
                    _number(result.effect),
                    _number(result.ci_low),
                    _number(result.ci_high),
                )
            )
    return points


@dataclass(slots=True)
class RunResult:
    """Everything a summary or report shows about one run (streaming or replayed).

    Parameters
    ----------
    title
        Heading of the report.
    snapshots
        Per experiment, its metrics snapshots in time order.
    primary_metrics
        Per experiment, the primary metric of its verdict (``None``: none configured).
    kpis
        Per experiment, the names of its business KPIs (metrics its downstream KPI
        functions return); experiments without KPI functions have none.
    alerts, verdicts
        As published on the alerts topic (or computed by the replay), in time order.
    latencies
        Per model version (``"v1 (live)"``, ``"v2"``...), observed prediction latencies in ms.
    notes
        Free ``label -> text`` lines shown at the top of the report (duration, command...).

    Examples
    --------
    >>> run = RunResult("demo")
    >>> run.add_snapshot(MetricsSnapshot("e", "m", "v1", "v2", 5, {}, (), "continue", "early"))
    >>> run.final("e").reason
    'early'
    """

    title: str
    snapshots: dict[str, list[MetricsSnapshot]] = field(default_factory=dict)
    primary_metrics: dict[str, str | None] = field(default_factory=dict)
    kpis: dict[str, tuple[str, ...]] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def add_snapshot(self, snapshot: MetricsSnapshot) -> None:
        self.snapshots.setdefault(snapshot.experiment, []).append(snapshot)

    def add_latencies(self, predictions: Iterable[Prediction]) -> None:
        """Record the latency of each answered prediction under its version label."""
        for p in predictions:
            if p.error is None:
                label = f"{p.version} (live)" if p.role is Role.LIVE else p.version
                self.latencies.setdefault(label, []).append(p.latency_ms)

    def final(self, experiment: str) -> MetricsSnapshot:
        """The latest snapshot of ``experiment``."""
        return self.snapshots[experiment][-1]

    @property
    def start_ms(self) -> int:
        """The time of the run's first snapshot (0 without any)."""
        return min((s[0].timestamp_ms for s in self.snapshots.values() if s), default=0)

    @property
    def experiments(self) -> list[str]:
        return sorted(self.snapshots)

    def primary(self, experiment: str) -> str:
        """The primary metric of ``experiment``; ``log_loss``/``abs_error`` by task otherwise."""
        metric = self.primary_metrics.get(experiment)
        if metric:
            return metric
        metrics = {r.metric for r in self.final(experiment).results}
        return "log_loss" if "log_loss" in metrics else "abs_error"

    def model_metric(self, experiment: str) -> str | None:
        """The labelled model metric shown beside the KPIs: ``correct`` or ``abs_error``.

        Examples
        --------
        >>> run = RunResult("r")
        >>> run.add_snapshot(MetricsSnapshot("e", "m", "v1", "v2", 5, {},
        ...                  (MetricResult("abs_error", "msprt", 9),), "continue", ""))
        >>> run.model_metric("e")
        'abs_error'
        """
        metrics = {r.metric for r in self.final(experiment).results}
        return next((m for m in ("correct", "abs_error") if m in metrics), None)

    def roles(self, experiment: str) -> dict[str, str]:
        """``metric -> "primary" | "model metric" | "business KPI"`` for ``experiment``.

        Examples
        --------
        >>> run = RunResult("r", primary_metrics={"e": "late"}, kpis={"e": ("late", "idle")})
        >>> run.add_snapshot(MetricsSnapshot("e", "m", "v1", "v2", 5, {},
        ...                  (MetricResult("abs_error", "msprt", 9),), "continue", ""))
        >>> run.roles("e")
        {'late': 'primary', 'idle': 'business KPI', 'abs_error': 'model metric'}
        """
        roles = {kpi: "business KPI" for kpi in self.kpis.get(experiment, ())}
        model = self.model_metric(experiment)
        if model:
            roles.setdefault(model, "model metric")
        roles[self.primary(experiment)] = "primary"
        return roles

    def has_decision(self, experiment: str) -> bool:
        """Whether the experiment compares downstream decisions (metric ``decision``)."""
        return any(r.metric == "decision" for r in self.final(experiment).results)

    def final_decisions(self) -> Mapping[str, str]:
        """``experiment -> decision`` of the latest snapshots."""
        return {name: self.final(name).decision for name in self.experiments}
