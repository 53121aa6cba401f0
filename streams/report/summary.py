"""The summary table: one row per experiment (candidate), from its latest snapshot."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from streams.records import AlertState, MetricResult, MetricsSnapshot
from streams.report.costs import CostSummary, cost_summary
from streams.report.model import SEQUENTIAL_TESTS, RunResult, find_result

__all__ = [
    "ALERT_COLUMNS",
    "MetricDelta",
    "SummaryRow",
    "agreement_text",
    "alert_rows",
    "interval",
    "metric_delta",
    "model_label",
    "render_summary",
    "short_reason",
    "summary_rows",
]

_INTERVAL_WIDTH = 16
"""Terminal width of ``[-0.123, +0.456]``: intervals are never folded."""
_DECISION_STYLE = {"promote": "bold green", "reject": "bold red", "continue": "yellow"}


@dataclass(frozen=True, slots=True)
class MetricDelta:
    """Effect (candidate - live) of one metric with its anytime-valid interval.

    Examples
    --------
    >>> MetricDelta("late", 0.05, 0.02, 0.08).text()
    'late +0.050 [+0.020, +0.080]'
    """

    metric: str
    delta: float | None
    low: float | None
    high: float | None

    def text(self, digits: int = 3, name: bool = True, wrap: bool = False) -> str:
        """``metric Δ [low, high]`` (``-`` when not measured yet); ``wrap``: two lines."""
        value = interval(self.delta, self.low, self.high, digits)
        if wrap:
            value = value.replace(" [", "\n[", 1)
        return f"{self.metric} {value}" if name else value


@dataclass(frozen=True, slots=True)
class SummaryRow:
    """One experiment's outcome, as the table and ``--json`` show it.

    Examples
    --------
    >>> row = SummaryRow("e", "v2", 10, 9, "log_loss", -0.1, -0.2, 0.0, None, None, None,
    ...                  1.1, "promote", "primary better")
    >>> row.to_dict()["decision"]
    'promote'

    ``model`` is the labelled model metric (``correct`` or ``abs_error``), ``kpis`` the
    business KPIs of downstream KPI functions and ``decision_agreement`` the share of
    requests on which the downstream decision of both models is the same.
    """

    experiment: str
    candidate: str
    paired: int
    labelled: int
    primary_metric: str
    primary_delta: float | None
    primary_low: float | None
    primary_high: float | None
    accuracy_delta: float | None
    accuracy_low: float | None
    accuracy_high: float | None
    latency_ratio_p50: float | None
    decision: str
    reason: str
    model: MetricDelta | None = None
    kpis: tuple[MetricDelta, ...] = ()
    decision_agreement: float | None = None
    decision_agreement_low: float | None = None
    decision_agreement_high: float | None = None
    cost: CostSummary | None = None
    """What the candidate costs to run beside live (:mod:`streams.report.costs`)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _clean(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def _triple(result: MetricResult | None) -> tuple[float | None, float | None, float | None]:
    if result is None:
        return None, None, None
    return _clean(result.effect), _clean(result.ci_low), _clean(result.ci_high)


def metric_delta(snapshot: MetricsSnapshot, metric: str, segment: str = "") -> MetricDelta:
    """The mSPRT effect and interval of ``metric`` in ``segment`` of ``snapshot``."""
    return MetricDelta(metric, *_triple(find_result(snapshot, metric, segment=segment)))


def _row(run: RunResult, snapshot: MetricsSnapshot) -> SummaryRow:
    name = snapshot.experiment
    primary = run.primary(name)
    latency = find_result(snapshot, "latency_ms", "quantile_ratio_p50")
    model = run.model_metric(name)
    agreement = find_result(snapshot, "decision", "agreement")
    return SummaryRow(
        snapshot.experiment,
        snapshot.candidate_version,
        int(snapshot.counts.get("paired", 0)),
        int(snapshot.counts.get("labelled", 0)),
        primary,
        *_triple(find_result(snapshot, primary)),
        *_triple(find_result(snapshot, "correct")),
        None if latency is None else _clean(latency.statistic),
        snapshot.decision,
        snapshot.reason,
        None if model is None else metric_delta(snapshot, model),
        tuple(metric_delta(snapshot, kpi) for kpi in run.kpis.get(name, ())),
        *_triple(agreement),
        cost_summary(run, name),
    )


def summary_rows(run: RunResult) -> list[SummaryRow]:
    """One row per experiment of ``run``, from its latest snapshot."""
    return [_row(run, run.final(name)) for name in run.experiments]


def interval(delta: float | None, low: float | None, high: float | None, digits: int = 3) -> str:
    """``Δ [low, high]`` with signs; ``-`` when there is no effect yet.

    Examples
    --------
    >>> interval(-0.4, -0.61, None)
    '-0.400 [-0.610, inf]'
    """
    if delta is None:
        return "-"
    lo = "-inf" if low is None else f"{low:+.{digits}f}"
    hi = "inf" if high is None else f"{high:+.{digits}f}"
    return f"{delta:+.{digits}f} [{lo}, {hi}]"


def model_label(metric: str) -> str:
    """How a model metric is named in tables: ``correct`` reads as accuracy."""
    return "accuracy" if metric == "correct" else metric


def agreement_text(rate: float | None, low: float | None, high: float | None) -> str:
    """Share of equal decisions as a percentage with its interval, or ``-``.

    Examples
    --------
    >>> agreement_text(0.52, 0.5, 0.54)
    '52% [50%, 54%]'
    """
    if rate is None:
        return "-"
    if low is None or high is None:
        return f"{rate:.0%}"
    return f"{rate:.0%} [{low:.0%}, {high:.0%}]"


ALERT_COLUMNS = ("experiment", "rule", "severity", "segment", "state", "Δ [CI]", "n")


_EVIDENCE_TESTS = "|".join((*SEQUENTIAL_TESTS, "bounded_cs"))
_GUARDRAIL_EVIDENCE = re.compile(rf" \((?:{_EVIDENCE_TESTS}): [^()]*\)")
"""The test evidence in parentheses after each guardrail of a reason."""


def short_reason(reason: str) -> str:
    """The verdict reason without the test's full evidence (kept in JSON and the report).

    Examples
    --------
    >>> short_reason("primary log_loss significantly worse: msprt: statistic=9 p=0.01")
    'primary log_loss significantly worse'
    >>> short_reason("guardrail a violated: excess in [2, 3] (bounded_cs: e=9 CI=[2, 3]); "
    ...              "guardrail b violated: excess in [4, 5] (msprt: e=8)")
    'guardrail a violated: excess in [2, 3]; guardrail b violated: excess in [4, 5]'
    """
    reason = _GUARDRAIL_EVIDENCE.sub("", reason)
    marks = (f"{sep}{test}" for test in SEQUENTIAL_TESTS for sep in (": ", " ("))
    cut = min((i for i in map(reason.find, marks) if i >= 0), default=-1)
    return reason if cut < 0 else reason[:cut]


def alert_rows(run: RunResult) -> list[tuple[str, str, str, str, str, str, str]]:
    """One tuple of :data:`ALERT_COLUMNS` per alert transition, in time order."""
    return [
        (
            a.experiment,
            a.rule,
            a.severity,
            a.result.segment or "all",
            a.state.value,
            interval(_clean(a.result.effect), _clean(a.result.ci_low), _clean(a.result.ci_high)),
            str(a.result.n),
        )
        for a in sorted(run.alerts, key=lambda a: a.timestamp_ms)
    ]


def _model_cell(row: SummaryRow) -> str:
    if row.model is None:
        return "-"
    return f"{model_label(row.model.metric)} {row.model.text(name=False, wrap=True)}"


def _summary_table(run: RunResult, rows: list[SummaryRow]) -> Table:
    table = Table(
        title=f"{run.title}: verdicts",
        title_justify="left",
        caption="Δ = candidate - live, anytime-valid 95% interval (lower loss, error and late "
        "share, higher accuracy is better); decisions agree: share of requests on which the "
        "downstream decision is the same",
        caption_justify="left",
        show_lines=True,
    )
    table.add_column("experiment", no_wrap=True)
    table.add_column("paired / labelled", max_width=11)
    primaries = sorted({row.primary_metric for row in rows})
    single = len(primaries) == 1
    wide = _INTERVAL_WIDTH
    table.add_column(f"Δ {primaries[0]} [CI]" if single else "Δ primary [CI]", min_width=wide)
    table.add_column("Δ model metric [CI]", min_width=wide)
    table.add_column("Δ business KPIs [CI]", min_width=wide)
    table.add_column("decisions agree", min_width=10, max_width=10)
    table.add_column("latency p50", justify="right", max_width=7)
    table.add_column("verdict", no_wrap=True)
    table.add_column("reason", overflow="fold")
    for row in rows:
        style = _DECISION_STYLE.get(row.decision, "")
        primary = MetricDelta(
            row.primary_metric, row.primary_delta, row.primary_low, row.primary_high
        )
        table.add_row(
            row.experiment,
            f"{row.paired} / {row.labelled}",
            primary.text(name=not single, wrap=True),
            _model_cell(row),
            "\n".join(k.text(wrap=True) for k in row.kpis) or "-",
            agreement_text(
                row.decision_agreement, row.decision_agreement_low, row.decision_agreement_high
            ).replace(" [", "\n[", 1),
            "-" if row.latency_ratio_p50 is None else f"{row.latency_ratio_p50:.2f}x",
            f"[{style}]{row.decision.upper()}[/]" if style else row.decision.upper(),
            short_reason(row.reason),
        )
    return table


def _cost_table(rows: list[SummaryRow]) -> Table | None:
    """What each candidate costs beside live, one line each; ``None`` if nothing was measured.

    A table of its own, so the verdicts table keeps its reasons readable on a usual terminal.
    """
    measured = [(r.experiment, r.cost) for r in rows if r.cost is not None and r.cost.measured]
    if not measured:
        return None
    table = Table(
        title="what each candidate costs",
        title_justify="left",
        caption="CPU ms per prediction (p50 / p99; ratio of the means to live), estimated "
        "cores at the observed request rate, peak memory per replica, model load time; live's "
        "measured in the serving app, a candidate's in its shadow worker",
        caption_justify="left",
    )
    table.add_column("experiment", no_wrap=True)
    table.add_column("cost (in its worker)", overflow="fold")
    for experiment, cost in measured:
        table.add_row(experiment, cost.text())
    return table


def render_summary(run: RunResult, console: Console) -> None:
    """Print the verdicts table, what each candidate costs (if measured), then the alerts
    raised, to ``console``."""
    rows = summary_rows(run)
    console.print(_summary_table(run, rows))
    costs = _cost_table(rows)
    if costs is not None:
        console.print(costs)
    alerts = alert_rows(run)
    if not alerts:
        console.print("No alerts were raised.")
        return
    listing = Table(title="alerts raised", title_justify="left")
    for column in ALERT_COLUMNS:
        listing.add_column(column, overflow="fold")
    for alert in alerts:
        colour = "red" if alert[4] == AlertState.FIRING.value else "green"
        listing.add_row(*alert[:4], f"[{colour}]{alert[4]}[/]", *alert[5:])
    console.print(listing)
