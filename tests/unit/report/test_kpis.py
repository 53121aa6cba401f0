"""Business KPIs beside model metrics: summary rows, terminal table and HTML report."""

from __future__ import annotations

import io
import json
import re
from functools import cache

from rich.console import Console

from streams.replay.run import configure_run, replay_records
from streams.report import RunResult, render_html, render_summary, summary_rows
from tests.unit.report.helpers import DELIVERY, delivery_records

ORDERS = 1200


@cache
def _run() -> RunResult:
    return replay_records(delivery_records(ORDERS), DELIVERY, title="delivery run")


def test_configure_run_names_primary_metrics_and_kpis() -> None:
    run = configure_run(RunResult("r"), DELIVERY)
    assert run.primary_metrics == {"d": "log_loss", "eta/v2": "late"}
    assert run.kpis == {"eta/v2": ("late", "idle_minutes")}


def test_the_early_candidate_is_better_on_mae_and_rejected_on_late_deliveries() -> None:
    row = next(r for r in summary_rows(_run()) if r.experiment == "eta/v2")
    assert row.decision == "reject" and "late" in row.reason
    assert row.primary_metric == "late"
    assert row.model is not None and row.model.metric == "abs_error"
    assert row.model.delta is not None and row.model.high is not None and row.model.high < 0
    late, idle = row.kpis
    assert (late.metric, idle.metric) == ("late", "idle_minutes")
    assert late.low is not None and late.low > 0  # significantly more late deliveries
    assert idle.delta is not None and idle.delta < 0  # couriers wait less: promises are tight
    assert row.decision_agreement is not None and 0.3 < row.decision_agreement < 0.9
    assert row.paired == row.labelled == ORDERS


def test_kpis_are_in_the_json_rows() -> None:
    payload = json.loads(json.dumps([r.to_dict() for r in summary_rows(_run())]))
    row = next(r for r in payload if r["experiment"] == "eta/v2")
    assert [k["metric"] for k in row["kpis"]] == ["late", "idle_minutes"]
    assert row["model"]["metric"] == "abs_error"


def test_terminal_summary_shows_kpis_agreement_and_alerts() -> None:
    out = io.StringIO()
    render_summary(_run(), Console(file=out, width=200))
    text = out.getvalue()
    assert re.search(r"eta/v2 .*REJECT", text)
    for shown in ("Δ business KPIs", "abs_error -", "late +", "idle_minutes -", "decisions agree"):
        assert shown in text, shown
    assert "later-deliveries" in text and "better-mae" in text


def test_html_report_shows_kpis_per_segment() -> None:
    page = render_html(_run())
    assert "Δ business KPIs [CI]" in page and "idle_minutes:" in page
    section = page[page.index("id='segments'") : page.index("id='alerts'")]
    for segment in ("all", "city=berlin", "city=paris", "city=madrid"):
        assert f"<td>{segment}</td>" in section, segment
    for header in ("Δ late [CI]", "Δ abs_error [CI]", "Δ idle_minutes [CI]", "decisions agree"):
        assert header in section, header
    assert 'id="trajectory-late"' in page and 'id="segments-late"' in page
    assert 'id="trajectory-abs_error"' in page
    assert "later-deliveries" in page
