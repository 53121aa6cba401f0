"""A self-contained HTML report: verdicts, KPIs by segment, alerts, counts, PNG plots and
the live page's SVG trajectories."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import replace
from html import escape
from pathlib import Path

from streams.report.model import SEQUENTIAL_TESTS, RunResult, find_result
from streams.report.summary import (
    ALERT_COLUMNS,
    MetricDelta,
    SummaryRow,
    agreement_text,
    alert_rows,
    metric_delta,
    model_label,
    summary_rows,
)
from streams.report.svg import experiment_charts

__all__ = [
    "STYLE",
    "alerts_table",
    "counts_table",
    "render_html",
    "segments_tables",
    "summary_table",
    "trajectories_html",
    "write_html",
]

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
.promote { color: #17803d; font-weight: bold; } .reject { color: #b3261e; font-weight: bold; }
.continue { color: #9a6700; font-weight: bold; } .FIRING { color: #b3261e; }
.RESOLVED { color: #17803d; } figure { margin: 1.5em 0; } img { max-width: 100%; }
.charts { display: flex; flex-wrap: wrap; gap: 0.8em; } .charts svg { border: 1px solid #eee; }
"""


def _cell(value: object) -> str:
    return f"<td>{escape(str(value))}</td>"


def _deltas(deltas: Iterable[MetricDelta]) -> str:
    lines = [f"{escape(d.metric)}: {escape(d.text(4, name=False))}" for d in deltas]
    return f"<td>{'<br>'.join(lines) or '-'}</td>"


def _lines(text: str) -> str:
    return f"<td>{'<br>'.join(escape(part) for part in text.split('; '))}</td>"


def summary_table(rows: list[SummaryRow]) -> str:
    head = (
        "<tr><th>experiment</th><th>candidate</th><th>paired</th><th>labelled</th>"
        "<th>Δ primary [CI]</th><th>Δ model metric [CI]</th><th>Δ business KPIs [CI]</th>"
        "<th>decisions agree</th><th>latency p50 ratio</th><th>cost (in its worker)</th>"
        "<th>verdict</th><th>reason</th></tr>"
    )
    body = []
    for r in rows:
        ratio = "-" if r.latency_ratio_p50 is None else f"{r.latency_ratio_p50:.2f}x"
        primary = MetricDelta(r.primary_metric, r.primary_delta, r.primary_low, r.primary_high)
        model = () if r.model is None else (replace(r.model, metric=model_label(r.model.metric)),)
        agreement = agreement_text(
            r.decision_agreement, r.decision_agreement_low, r.decision_agreement_high
        )
        body.append(
            "<tr>"
            + _cell(r.experiment)
            + _cell(r.candidate)
            + _cell(r.paired)
            + _cell(r.labelled)
            + _deltas([primary])
            + _deltas(model)
            + _deltas(r.kpis)
            + _cell(agreement)
            + _cell(ratio)
            + _lines("-" if r.cost is None else r.cost.text())
            + f'<td class="{escape(r.decision)}">{escape(r.decision.upper())}</td>'
            + _cell(r.reason)
            + "</tr>"
        )
    return f"<table>{head}{''.join(body)}</table>"


def _segment_metrics(run: RunResult, experiment: str) -> list[str]:
    """Primary, model metric and KPIs of ``experiment``, each once, in that order."""
    metrics = [run.primary(experiment), run.model_metric(experiment), *run.kpis.get(experiment, ())]
    return list(dict.fromkeys(m for m in metrics if m))


def segments_tables(run: RunResult) -> str:
    """Per experiment, one row per segment value: Δ of each metric, decision agreement."""
    if not run.experiments:
        return "<p>No snapshots.</p>"
    parts = []
    for name in run.experiments:
        final = run.final(name)
        metrics = _segment_metrics(run, name)
        decided = run.has_decision(name)
        segments = sorted({r.segment for r in final.results if r.metric in metrics})
        head = "<tr><th>segment</th><th>n</th>" + "".join(
            f"<th>Δ {escape(model_label(m))} [CI]</th>" for m in metrics
        )
        head += "<th>decisions agree</th></tr>" if decided else "</tr>"
        body = []
        for segment in segments:
            counted = [
                r.n for r in final.results if r.segment == segment and r.test in SEQUENTIAL_TESTS
            ]
            row = _cell(segment or "all") + _cell(max(counted, default=0))
            row += "".join(
                _cell(metric_delta(final, m, segment).text(4, name=False)) for m in metrics
            )
            if decided:
                found = find_result(final, "decision", "agreement", segment)
                rate, low, high = (
                    (None, None, None)
                    if found is None
                    else (found.effect, found.ci_low, found.ci_high)
                )
                row += _cell(agreement_text(rate, low, high))
            body.append(f"<tr>{row}</tr>")
        parts.append(f"<h3>{escape(name)}</h3><table>{head}{''.join(body)}</table>")
    return "".join(parts)


def alerts_table(run: RunResult) -> str:
    rows = alert_rows(run)
    if not rows:
        return "<p>No alerts were raised.</p>"
    body = "".join(
        "<tr>"
        + "".join(_cell(v) for v in row[:4])
        + f'<td class="{escape(row[4])}">{escape(row[4])}</td>'
        + "".join(_cell(v) for v in row[5:])
        + "</tr>"
        for row in rows
    )
    head = "<tr>" + "".join(f"<th>{escape(c)}</th>" for c in ALERT_COLUMNS) + "</tr>"
    return f"<table>{head}{body}</table>"


def counts_table(run: RunResult) -> str:
    if not run.experiments:
        return "<p>No snapshots.</p>"
    names = sorted({k for e in run.experiments for k in run.final(e).counts})
    head = "<tr><th>experiment</th>" + "".join(f"<th>{escape(n)}</th>" for n in names) + "</tr>"
    body = "".join(
        "<tr>" + _cell(e) + "".join(_cell(run.final(e).counts.get(n, 0)) for n in names) + "</tr>"
        for e in run.experiments
    )
    return f"<table>{head}{body}</table>"


def trajectories_html(run: RunResult) -> str:
    """Per experiment, its metrics' Δ and interval over time as inline SVG (what the live
    page draws)."""
    return "".join(
        f"<h3>{escape(name)}</h3><div class='charts'>{''.join(charts)}</div>"
        for name in run.experiments
        if (charts := experiment_charts(run, name))
    )


def render_html(run: RunResult) -> str:
    """The report as one HTML document (no external resources).

    Examples
    --------
    >>> page = render_html(RunResult("empty run"))
    >>> "<h1>empty run</h1>" in page
    True
    """
    from streams.report.plots import figures  # matplotlib: only when a report is drawn

    notes = "".join(f"<li><b>{escape(k)}</b>: {escape(v)}</li>" for k, v in run.notes.items())
    plots = "".join(
        f'<section id="{escape(key)}"><h3>{escape(caption)}</h3><figure>'
        f'<img alt="{escape(caption)}" src="data:image/png;base64,'
        f'{base64.b64encode(png).decode("ascii")}"></figure></section>'
        for key, caption, png in figures(run)
    )
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(run.title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{escape(run.title)}</h1><ul>{notes}</ul>"
        f"<h2 id='summary'>Verdicts</h2>{summary_table(summary_rows(run))}"
        "<p>Δ = candidate - live with its anytime-valid 95% interval. Business KPIs come "
        "from the experiment's downstream KPI functions; decisions agree is the share of "
        "requests on which its decision function decides the same for both models. Cost: "
        "CPU ms per prediction (p50 / p99), estimated cores at the observed request rate and "
        "peak memory per replica, each with its ratio to live; a candidate's are measured in "
        "its shadow worker (batched, another process), live's in the serving app.</p>"
        f"<h2 id='segments'>Model metrics and business KPIs by segment</h2>{segments_tables(run)}"
        f"<h2 id='alerts'>Alerts</h2>{alerts_table(run)}"
        f"<h2 id='counts'>Join counts</h2>{counts_table(run)}"
        f"<h2 id='plots'>Plots</h2>{plots}"
        f"<h2 id='trajectories'>Trajectories by experiment</h2>{trajectories_html(run)}"
        "</body></html>\n"
    )


def write_html(run: RunResult, path: Path) -> Path:
    """Write the report to ``path`` (parents created); returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(run), encoding="utf-8")
    return path
