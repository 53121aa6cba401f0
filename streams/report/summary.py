"""The summary table: one row per experiment (candidate), from its latest snapshot."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from streams.records import AlertState, MetricResult, MetricsSnapshot
from streams.report.model import RunResult, find_result

__all__ = [
    "ALERT_COLUMNS",
    "SummaryRow",
    "alert_rows",
    "render_summary",
    "short_reason",
    "summary_rows",
]

_DECISION_STYLE = {"promote": "bold green", "reject": "bold red", "continue": "yellow"}


@dataclass(frozen=True, slots=True)
class SummaryRow:
    """One experiment's outcome, as the table and ``--json`` show it.

    Examples
    --------
    >>> row = SummaryRow("e", "v2", 10, 9, "log_loss", -0.1, -0.2, 0.0, None, None, None,
    ...                  1.1, "promote", "primary better")
    >>> row.to_dict()["decision"]
    'promote'
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _clean(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def _triple(result: MetricResult | None) -> tuple[float | None, float | None, float | None]:
    if result is None:
        return None, None, None
    return _clean(result.effect), _clean(result.ci_low), _clean(result.ci_high)


def _row(run: RunResult, snapshot: MetricsSnapshot) -> SummaryRow:
    primary = run.primary(snapshot.experiment)
    latency = find_result(snapshot, "latency_ms", "quantile_ratio_p50")
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
    )


def summary_rows(run: RunResult) -> list[SummaryRow]:
    """One row per experiment of ``run``, from its latest snapshot."""
    return [_row(run, run.final(name)) for name in run.experiments]


def _interval(delta: float | None, low: float | None, high: float | None) -> str:
    if delta is None:
        return "-"
    lo = "-inf" if low is None else f"{low:+.3f}"
    hi = "inf" if high is None else f"{high:+.3f}"
    return f"{delta:+.3f} [{lo}, {hi}]"


ALERT_COLUMNS = ("experiment", "rule", "severity", "segment", "state", "Δ [CI]", "n")


def short_reason(reason: str) -> str:
    """The verdict reason without the test's full evidence (kept in JSON and the report).

    Examples
    --------
    >>> short_reason("primary log_loss significantly worse: msprt: statistic=9 p=0.01")
    'primary log_loss significantly worse'
    """
    cut = min((i for i in (reason.find(": msprt"), reason.find(" (msprt")) if i >= 0), default=-1)
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
            _interval(_clean(a.result.effect), _clean(a.result.ci_low), _clean(a.result.ci_high)),
            str(a.result.n),
        )
        for a in sorted(run.alerts, key=lambda a: a.timestamp_ms)
    ]


def render_summary(run: RunResult, console: Console) -> None:
    """Print the summary table, then the alerts raised, to ``console``."""
    table = Table(
        title=f"{run.title}: verdicts",
        title_justify="left",
        caption="Δ = candidate - live, anytime-valid 95% interval (lower loss, higher accuracy "
        "is better)",
        caption_justify="left",
        show_lines=True,
    )
    for column in ("experiment", "n paired / labelled"):
        table.add_column(column, no_wrap=True)
    rows = summary_rows(run)
    primaries = sorted({row.primary_metric for row in rows})
    table.add_column(f"Δ {'/'.join(primaries)} [CI]" if primaries else "Δ primary [CI]")
    table.add_column("Δ accuracy [CI]")
    table.add_column("latency p50 ratio", justify="right")
    table.add_column("verdict", no_wrap=True)
    table.add_column("reason", overflow="fold")
    for row in rows:
        style = _DECISION_STYLE.get(row.decision, "")
        table.add_row(
            row.experiment,
            f"{row.paired} / {row.labelled}",
            _interval(row.primary_delta, row.primary_low, row.primary_high),
            _interval(row.accuracy_delta, row.accuracy_low, row.accuracy_high),
            "-" if row.latency_ratio_p50 is None else f"{row.latency_ratio_p50:.2f}x",
            f"[{style}]{row.decision.upper()}[/]" if style else row.decision.upper(),
            short_reason(row.reason),
        )
    console.print(table)
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
