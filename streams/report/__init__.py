"""Results of a shadow evaluation run, as a terminal summary and a self-contained HTML report.

The demo (streaming) and ``shadow-eval replay`` (offline) both collect a :class:`RunResult`
-- metrics snapshots over time, alerts, verdicts, latencies -- and hand it to
:func:`summary_rows` / :func:`render_summary` for the table and :func:`write_html` for the
report with its plots (matplotlib PNGs embedded as base64).
"""

from streams.report.html import render_html, write_html
from streams.report.model import RunResult
from streams.report.summary import SummaryRow, render_summary, summary_rows

__all__ = ["RunResult", "SummaryRow", "render_html", "render_summary", "summary_rows", "write_html"]
