"""Stage 2 keeps what the live page shows: on the in-process fake of the Kafka layer, each
report lands in :attr:`JudgeStage.recent` and the page renders it."""

from __future__ import annotations

from pathlib import Path

from streams.join.metrics import JoinMetrics
from streams.join.stage_judge import JudgeStage
from streams.web import LivePage
from tests.unit.join.test_stage_loops import (
    GROUP,
    SETTINGS,
    _broker,
    _drain,
    _experiments,
    _publish,
    _stage,
)
from tests.unit.kafka.fakes import FakeClients


def test_each_report_of_stage_two_reaches_the_page(tmp_path: Path) -> None:
    broker = _broker()
    for i in range(30):
        _publish(broker, f"r{i}", live=True, shadow=True, label=True)
    pairs = _stage(broker, tmp_path / "pairs")
    _drain(pairs)
    pairs.close()
    judge = JudgeStage(
        SETTINGS, _experiments(), f"{GROUP}-judge", JoinMetrics(), tmp_path,
        clients=FakeClients(broker),
    )  # fmt: skip
    judge.start()
    while judge.poll(0):
        pass
    page = LivePage(judge.experiments, judge.recent, lambda: judge.latest)
    assert page.body()[0] == 0
    judge.publish_reports()
    judge.publish_reports()
    kept = judge.recent.snapshots()
    assert set(kept) == set(judge.latest) and all(len(s) == 2 for s in kept.values())
    version, html = page.body()
    assert version == judge.recent.version > 0
    assert 'data-experiment="worse"' in html and "<b>30</b> labelled" in html
    judge.close()
