"""The live experiment page: what it shows, that every user string is escaped, and the
server's routes and headers (no broker: stage 2's :class:`Judge` runs in-process)."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser

import pytest

from streams.join.experiments import ExperimentsFile
from streams.join.judge import Judge
from streams.join.recent import RecentReports
from streams.records import JoinEvent, JoinKind, MetricsSnapshot
from streams.synthetic import CandidateSpec, classification_requests
from streams.web import LivePage, LiveServer, serve_page
from streams.web.page import live_run, render_body

HOSTILE = "<script>alert('x')</script><img src=x onerror=alert(1)>&\"q\""
EXPERIMENTS = ExperimentsFile.parse(
    f"""
[[experiments]]
name = {json.dumps(HOSTILE)}
model = "churn"
live_version = "v1"
candidate = "v2"
task = "binary"
positive_class = "1"
primary_metric = "correct"
segments = ["country"]
min_samples = 50
"""
)
NAME = HOSTILE


def judged(reports: int = 5, per_report: int = 300) -> RecentReports:
    """Stage 2's memory after ``reports`` snapshots of a candidate 10 points worse."""
    judge, recent = Judge(EXPERIMENTS), RecentReports()
    requests = classification_requests(
        reports * per_report, CandidateSpec("v1", 0.9), [CandidateSpec("v2", 0.8)], seed=3
    )
    for i, request in enumerate(requests):
        country = HOSTILE if i % 3 == 0 else "DE"
        event = JoinEvent(
            JoinKind.LABELLED,
            NAME,
            request.live.request_id,
            request.live.timestamp_ms,
            request.live,
            request.candidates[0],
            {"country": country},
            request.label.value,
        )
        judge.apply(event)
        if (i + 1) % per_report == 0:
            recent.add(judge.report(NAME, request.live.timestamp_ms))
    return recent


class Tags(HTMLParser):
    """Every tag and attribute name of a document."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)


def test_the_body_shows_verdict_metrics_segments_and_trajectories() -> None:
    recent = judged()
    run = live_run(EXPERIMENTS, recent.snapshots(), recent.alerts())
    html = render_body(run)
    final = run.final(NAME)
    assert final.decision == "reject"
    assert 'data-decision="reject"' in html and "Reject v2: it does worse than v1." in html
    assert "anytime-valid 95% interval" in html
    assert html.count("<svg") >= 1 and "<polyline" in html and "<polygon" in html
    assert "accuracy (primary)" in html
    assert "<b>1500</b> labelled" in html
    assert "by segment" in html and "DE" in html


def test_every_user_string_is_escaped() -> None:
    recent = judged(reports=3)
    html = render_body(live_run(EXPERIMENTS, recent.snapshots(), recent.alerts()))
    assert HOSTILE not in html and "<script" not in html and "<img" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    tags = Tags()
    tags.feed(html)
    assert tags.tags <= {
        "h2", "h3", "p", "table", "tr", "th", "td", "section", "span", "b", "div", "br",
        "code", "svg", "text", "line", "polygon", "polyline", "circle", "rect",
    }  # fmt: skip
    assert not {a for a in tags.attributes if a.startswith("on")}


def test_before_any_snapshot_the_page_says_it_is_waiting() -> None:
    html = render_body(live_run(EXPERIMENTS, {}, ()))
    assert 'id="waiting"' in html


def test_the_history_is_bounded_and_spans_the_whole_run() -> None:
    recent = RecentReports(history=10)
    for t in range(1000):
        recent.add_snapshot(MetricsSnapshot("e", "m", "v1", "v2", t, {}, (), "continue", ""))
    kept = [s.timestamp_ms for s in recent.snapshots()["e"]]
    assert len(kept) <= 10 and kept[0] == 0 and kept[-1] == 999 and kept == sorted(kept)


@pytest.fixture
def server() -> Iterator[tuple[LiveServer, RecentReports]]:
    recent = judged(reports=2)
    served = serve_page(LivePage(EXPERIMENTS, recent, lambda: {NAME: {"decision": "x"}}), 0)
    yield served, recent
    served.stop()


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_the_server_serves_the_page_its_json_and_verdicts(
    server: tuple[LiveServer, RecentReports],
) -> None:
    served, recent = server
    assert served.host == "127.0.0.1"
    status, headers, body = get(served.url)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert b"<script src='static/live.js'></script>" in body
    links = re.findall(r"""(?:src|href)=['"]([^'"]*)['"]""", body.decode())
    assert links and all("//" not in link for link in links)  # nothing from elsewhere: no CDN
    assert b"&lt;script&gt;" in body and HOSTILE.encode() not in body
    _, _, live = get(served.url + "live.json")
    before = json.loads(live)
    assert before["version"] == recent.version and "<section" in before["html"]
    recent.add_snapshot(
        MetricsSnapshot(NAME, "churn", "v1", "v2", 2**41, {}, (), "promote", "fine")
    )
    after = json.loads(get(served.url + "live.json?t=1")[2])
    assert after["version"] == before["version"] + 1
    assert "Promote v2" in after["html"]
    assert json.loads(get(served.url + "verdicts/")[2]) == {NAME: {"decision": "x"}}
    for path, kind in (("static/live.js", "text/javascript"), ("static/live.css", "text/css"),
                       ("favicon.svg", "image/svg+xml")):  # fmt: skip
        status, headers, _ = get(served.url + path)
        assert status == 200 and headers["Content-Type"].startswith(kind)
    assert get(served.url + "nothing")[0] == 404


def test_rendering_happens_once_per_snapshot() -> None:
    page = LivePage(EXPERIMENTS, judged(reports=1), dict)
    first = page.body()
    assert page.body() is first


def test_business_kpis_sit_beside_the_model_metric() -> None:
    """The demo's delivery experiment: late deliveries (primary KPI), idle minutes (KPI)
    and the model metric, each with its row and trajectory."""
    from streams.replay.run import replay_records
    from tests.unit.report.helpers import DELIVERY, delivery_records

    replayed = replay_records(delivery_records(600), DELIVERY)
    run = live_run(DELIVERY, {"eta/v2": replayed.snapshots["eta/v2"]}, replayed.alerts)
    html = render_body(run)
    section = html[html.index('data-experiment="eta/v2"') :]
    section = section[: section.index("</section>")]
    for row in ("<td>late</td><td>primary</td>", "<td>idle_minutes</td><td>business KPI</td>",
                "<td>abs_error</td><td>model metric</td>"):  # fmt: skip
        assert row in section
    assert section.count("<svg") >= 3
    assert "Δ business KPIs [CI]" in html and "idle_minutes: " in html


def test_the_report_and_the_page_draw_the_same_trajectories() -> None:
    from streams.replay.run import replay_records
    from streams.report import render_html
    from streams.report.svg import experiment_charts
    from tests.unit.report.helpers import DELIVERY, delivery_records

    replayed = replay_records(delivery_records(300), DELIVERY)
    charts = experiment_charts(replayed, "eta/v2")
    assert len(charts) >= 3
    report = render_html(replayed)
    page = render_body(live_run(DELIVERY, replayed.snapshots, replayed.alerts))
    assert all(chart in report and chart in page for chart in charts)
