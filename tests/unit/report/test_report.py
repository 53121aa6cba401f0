"""The summary rows, the terminal table and the HTML report of a run."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

from rich.console import Console

from streams.records import Alert, AlertState, GroundTruth, MetricResult, Prediction, Role
from streams.replay import replay
from streams.replay.run import replay_records
from streams.report import RunResult, render_html, render_summary, summary_rows, write_html
from streams.report.summary import short_reason
from streams.synthetic import CandidateSpec, classification_requests
from tests.unit.report.helpers import EXPERIMENTS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run(n: int = 1500) -> RunResult:
    records: list[Prediction | GroundTruth] = []
    for r in classification_requests(
        n,
        CandidateSpec("v1", 0.85),
        [CandidateSpec("v2", 0.95), CandidateSpec("v3", 0.6)],
        model="m",
        max_label_delay_ms=3000,
    ):
        records += [r.live, *r.candidates, r.label]
    records.sort(key=lambda r: r.timestamp_ms)
    return replay_records(records, EXPERIMENTS, title="unit run")


def test_summary_rows_show_the_verdicts_and_effects() -> None:
    rows = {row.candidate: row for row in summary_rows(_run())}
    assert rows["v3"].decision == "reject"
    assert rows["v3"].primary_metric == "log_loss"
    assert rows["v3"].primary_low is not None and rows["v3"].primary_low > 0
    assert rows["v2"].accuracy_delta is not None and rows["v2"].accuracy_delta > 0
    assert rows["v2"].paired == rows["v2"].labelled == 1500
    assert rows["v2"].latency_ratio_p50 is not None


def test_terminal_summary_lists_verdicts_and_alerts() -> None:
    out = io.StringIO()
    render_summary(_run(), Console(file=out, width=160))
    text = out.getvalue()
    assert re.search(r"m/v3 .*REJECT", text)
    assert "alerts raised" in text and "worse-log-loss" in text and "FIRING" in text


def test_html_report_has_sections_and_png_plots(tmp_path: Path) -> None:
    run = _run()
    path = write_html(run, tmp_path / "sub" / "report.html")
    page = path.read_text()
    for section in ("summary", "alerts", "counts", "plots", "trajectory-log_loss",
                    "trajectory-correct", "evidence", "latency", "segments-log_loss"):  # fmt: skip
        assert f'id="{section}"' in page or f"id='{section}'" in page, section
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 5
    assert all(base64.b64decode(image).startswith(PNG_MAGIC) for image in images)
    assert "REJECT" in page


def test_html_escapes_text_and_handles_an_empty_run() -> None:
    run = RunResult("<script>alert(1)</script>")
    run.alerts.append(
        Alert(
            "k",
            AlertState.FIRING,
            "e<1>",
            "r",
            "warning",
            "worse",
            MetricResult("m", "msprt", 3),
            "<b>",
            0,
        )
    )
    page = render_html(run)
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert "No snapshots." in page


def test_short_reason_drops_the_evidence() -> None:
    assert short_reason("insufficient evidence: x pending (msprt: p=1)") == (
        "insufficient evidence: x pending"
    )
    assert short_reason("no evidence yet") == "no evidence yet"


def test_latencies_are_grouped_by_version_and_role() -> None:
    run = RunResult("r")
    run.add_latencies(
        [
            Prediction("a", "m", "v1", Role.LIVE, 0, "1", latency_ms=1.0),
            Prediction("a", "m", "v2", Role.SHADOW, 0, "1", latency_ms=2.0),
            Prediction("b", "m", "v2", Role.SHADOW, 0, None, latency_ms=9.0, error="boom"),
        ]
    )
    assert run.latencies == {"v1 (live)": [1.0], "v2": [2.0]}


def test_replay_of_a_file_notes_its_source(tmp_path: Path) -> None:
    from streams.replay import write_jsonl

    path = tmp_path / "t.jsonl"
    write_jsonl(path, [Prediction("r1", "m", "v1", Role.LIVE, 0, "1")])
    run = replay([path], EXPERIMENTS)
    assert run.notes["records"] == "1"
    assert run.final("m/v2").counts["expired_no_shadow"] == 1
