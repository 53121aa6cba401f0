"""The live experiment page, rendered on the server from what join stage 2 keeps.

The tables are the HTML report's own (:mod:`streams.report.html`), the trajectories the
report's series drawn as inline SVG (:mod:`streams.report.svg`); every string a user
chose (experiment, model, version, segment, metric, reason) goes through
:func:`html.escape`. The page's script only swaps in the HTML the server rendered.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape

from streams.join.experiments import ExperimentsFile
from streams.records import Alert, MetricResult, MetricsSnapshot, Verdict
from streams.replay.run import configure_run
from streams.report.html import alerts_table, counts_table, segments_tables, summary_table
from streams.report.model import SEQUENTIAL_TESTS, RunResult
from streams.report.summary import model_label, short_reason, summary_rows
from streams.report.svg import experiment_charts

__all__ = ["live_run", "render_body", "render_page", "verdict_sentence"]

STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; color: #222; background: #f6f7f9; }
header { background: #1d2733; color: #fff; padding: 0.8em 2em; display: flex;
  align-items: baseline; gap: 1.5em; }
header h1 { font-size: 1.25em; margin: 0; }
#status { font-size: 0.85em; color: #b8c4d0; } #status.stale { color: #ffb4a9; }
main { max-width: 1180px; margin: 0 auto; padding: 1em 2em 3em; }
h2 { font-size: 1.1em; margin: 1.6em 0 0.4em; }
h3 { font-size: 1em; margin: 1.2em 0 0.3em; }
section.experiment { background: #fff; border: 1px solid #dde1e6; border-radius: 6px;
  padding: 0.6em 1.2em 1em; margin: 1em 0; }
section.experiment h2 { margin-top: 0.4em; display: flex; align-items: center; gap: 0.6em; }
.badge { font-size: 0.75em; padding: 0.15em 0.6em; border-radius: 1em; color: #fff; }
.badge.promote { background: #17803d; } .badge.reject { background: #b3261e; }
.badge.continue { background: #9a6700; }
.badge.promote, .badge.reject, .badge.continue { color: #fff; }
.sentence { font-size: 1.02em; margin: 0.3em 0 0.6em; }
.meta { color: #666; font-size: 0.85em; margin: 0; }
.counts { display: flex; gap: 0.8em; flex-wrap: wrap; margin: 0.6em 0; }
.count { background: #f3f5f8; border-radius: 4px; padding: 0.3em 0.7em; font-size: 0.9em; }
.count b { font-size: 1.15em; }
.charts { display: flex; flex-wrap: wrap; gap: 0.8em; }
.charts svg { background: #fff; border: 1px solid #eee; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.86em; background: #fff; }
th, td { border: 1px solid #d6d9de; padding: 0.25em 0.55em; text-align: left;
  vertical-align: top; }
th { background: #eef1f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.significant td { background: #fff6e0; }
.promote { color: #17803d; font-weight: bold; } .reject { color: #b3261e; font-weight: bold; }
.continue { color: #9a6700; font-weight: bold; } .FIRING { color: #b3261e; }
.RESOLVED { color: #17803d; } .empty { color: #777; }
"""

_SENTENCES = {
    "promote": "Promote {candidate}: it is at least as good as {live}.",
    "reject": "Reject {candidate}: it does worse than {live}.",
    "continue": "Keep watching: no decision on {candidate} against {live} yet.",
}


def verdict_sentence(snapshot: MetricsSnapshot) -> str:
    """The verdict in plain words, then why (unescaped text).

    Examples
    --------
    >>> s = MetricsSnapshot("e", "m", "v1", "v2", 0, {}, (), "continue", "primary: too few")
    >>> verdict_sentence(s)
    'Keep watching: no decision on v2 against v1 yet. Why: primary: too few.'
    """
    template = _SENTENCES.get(snapshot.decision, "Verdict {decision}.")
    text = template.format(
        candidate=snapshot.candidate_version,
        live=snapshot.live_version,
        decision=snapshot.decision,
    )
    reason = short_reason(snapshot.reason).rstrip(".")
    return f"{text} Why: {reason}." if reason else text


def live_run(
    experiments: ExperimentsFile,
    snapshots: Mapping[str, Sequence[MetricsSnapshot]],
    alerts: Sequence[Alert | Verdict] = (),
    title: str = "shadow-eval: live experiments",
) -> RunResult:
    """A :class:`RunResult` of what stage 2 kept, so the report's tables draw it."""
    run = configure_run(RunResult(title), experiments)
    for name, kept in snapshots.items():
        if kept:
            run.snapshots[name] = list(kept)
    run.alerts = [a for a in alerts if isinstance(a, Alert)]
    run.verdicts = [v for v in alerts if isinstance(v, Verdict)]
    return run


def _number(value: float | None, digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.{digits}g}"


def _signed(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:+.4g}"


def _metric_row(result: MetricResult, role: str, values: bool) -> str:
    low, high = result.ci_low, result.ci_high
    excludes_zero = (low is not None and low > 0) or (high is not None and high < 0)
    interval = f"[{_signed(low) if low is not None else '-inf'}, " + (
        f"{_signed(high) if high is not None else 'inf'}]"
    )
    cells = [
        escape(model_label(result.metric)),
        escape(role),
        str(result.n),
        *((_number(result.live_value), _number(result.candidate_value)) if values else ()),
        _signed(result.effect),
        interval,
        _number(result.pvalue, 3),
        _number(result.evalue, 3),
    ]
    klass = ' class="significant"' if excludes_zero else ""
    tds = "".join(
        f'<td class="num">{c}</td>' if i >= 2 else f"<td>{c}</td>" for i, c in enumerate(cells)
    )
    return f"<tr{klass}>{tds}</tr>"


def _metrics_table(run: RunResult, name: str) -> str:
    final = run.final(name)
    roles = run.roles(name)
    order = {role: i for i, role in enumerate(("primary", "model metric", "business KPI"))}
    results = sorted(
        (r for r in final.results if r.segment == "" and r.test in SEQUENTIAL_TESTS),
        key=lambda r: (order.get(roles.get(r.metric, ""), 3), r.metric, r.test),
    )
    if not results:
        return '<p class="empty">No metric has data yet.</p>'
    values = any(r.live_value is not None for r in results)
    names = ("metric", "role", "n", *(("live", "candidate") if values else ()), "Δ")
    names += ("anytime-valid 95% interval", "p", "e-value")
    head = "".join(f"<th>{h}</th>" for h in names)
    body = "".join(_metric_row(r, roles.get(r.metric, ""), values) for r in results)
    return f"<table class='metrics'><tr>{head}</tr>{body}</table>"


def _counts(snapshot: MetricsSnapshot) -> str:
    counts = snapshot.counts
    expired = sum(v for k, v in counts.items() if k.startswith("expired_"))
    errors = sum(v for k, v in counts.items() if k.startswith("errors:"))
    shown = [
        ("paired", counts.get("paired", 0)),
        ("labelled", counts.get("labelled", 0)),
        ("expired", expired),
        ("duplicates dropped", counts.get("duplicates_dropped", 0)),
        ("metric errors", errors),
    ]
    return '<div class="counts">' + "".join(
        f'<span class="count"><b>{value}</b> {label}</span>' for label, value in shown
    ) + "</div>"  # fmt: skip


def _charts(run: RunResult, name: str) -> str:
    charts = experiment_charts(run, name)
    return f'<div class="charts">{"".join(charts)}</div>' if charts else ""


def _experiment(run: RunResult, name: str) -> str:
    final = run.final(name)
    decision = final.decision if final.decision in _SENTENCES else "continue"
    when = datetime.fromtimestamp(final.timestamp_ms / 1000, UTC).strftime("%H:%M:%S UTC")
    return (
        f'<section class="experiment" data-experiment="{escape(name)}" '
        f'data-decision="{escape(final.decision)}" data-snapshot="{final.timestamp_ms}">'
        f'<h2>{escape(name)} <span class="badge {decision}">{escape(final.decision.upper())}'
        "</span></h2>"
        f'<p class="sentence">{escape(verdict_sentence(final))}</p>'
        f'<p class="meta">model {escape(final.model)}: live {escape(final.live_version)}, '
        f"candidate {escape(final.candidate_version)}; snapshot of {when} "
        f"({len(run.snapshots[name])} kept)</p>"
        f"{_counts(final)}{_metrics_table(run, name)}{_charts(run, name)}</section>"
    )


def render_body(run: RunResult) -> str:
    """Everything inside ``<main>``: replaced as a whole when a new snapshot arrives."""
    if not run.experiments:
        return (
            '<p class="empty" id="waiting">No snapshot yet: stage 2 publishes one per '
            "experiment every <code>snapshot_every_s</code> once it has caught up.</p>"
        )
    return (
        f"<h2 id='summary'>Verdicts</h2>{summary_table(summary_rows(run))}"
        + "".join(_experiment(run, name) for name in run.experiments)
        + "<h2 id='segments'>Model metrics and business KPIs by segment</h2>"
        + segments_tables(run)
        + f"<h2 id='alerts'>Recent alerts</h2>{alerts_table(run)}"
        + f"<h2 id='counts'>Join counts</h2>{counts_table(run)}"
        + "<p class='meta'>Δ = candidate - live; the intervals are confidence sequences, "
        "valid however often this page is looked at.</p>"
    )


def render_page(run: RunResult, version: int, refresh_ms: int = 2000) -> str:
    """The whole document: the current body, and the script that keeps it current."""
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{escape(run.title)}</title><link rel='icon' href='favicon.svg'>"
        "<link rel='stylesheet' href='static/live.css'></head><body>"
        f"<header><h1>{escape(run.title)}</h1><span id='status'>live</span></header>"
        f"<main id='live' data-version='{version}' data-refresh-ms='{refresh_ms}'>"
        f"{render_body(run)}</main><script src='static/live.js'></script></body></html>\n"
    )
