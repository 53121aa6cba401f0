"""Join events deleted before stage 2 judged them: counted and alerted once, with or
without a checkpoint (the real broker: tests/integration/test_offsets_lost.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.codec import Codec
from streams.join.experiments import ExperimentsFile
from streams.join.metrics import JoinMetrics
from streams.join.stage_judge import JudgeStage, unjudged_from
from streams.kafka.offset_loss import LOSS_RULE
from streams.records import Alert, JoinEvent, JoinEventBatch, JoinKind, Prediction, Role
from streams.settings import Settings
from streams.topics import partition_of
from tests.unit.join.experiments_toml import CANDIDATES_TOML
from tests.unit.kafka.fakes import FakeBroker, FakeClients

SETTINGS = Settings(topic_prefix="t", partitions=3)
TOPIC = SETTINGS.topics.join_events
GROUP = "app-t-judge"
CODEC = Codec()
CANDIDATES = {"worse": "v2", "same": "v3", "slow": "v4"}
EXPERIMENTS = ExperimentsFile.parse(CANDIDATES_TOML.format(pair_ttl=3600, label_ttl=7200))


@pytest.mark.parametrize(
    ("checkpoint", "committed", "expected"),
    [
        (None, None, None),  # a new group: it starts at the log start, nothing lost
        (None, 40, 40),  # no checkpoint (another worker's disk, an old format)
        (70, None, 70),  # a checkpoint whose commit never landed
        (70, 40, 70),  # the group's commit older than this worker's checkpoint
        (30, 40, 40),  # another owner judged (or counted) up to 40 since
        (0, None, 0),
    ],
)
def test_the_unjudged_events_begin_at_the_later_of_checkpoint_and_group_offset(
    checkpoint: int | None, committed: int | None, expected: int | None
) -> None:
    assert unjudged_from(checkpoint, committed) == expected


def _broker() -> FakeBroker:
    broker = FakeBroker(partitions=3)
    broker.create(*SETTINGS.topics.all)
    return broker


def _pair(broker: FakeBroker, requests: range) -> None:
    """One paired event per experiment and request, one record each."""
    for i in requests:
        for name, version in CANDIDATES.items():
            rid = f"r{i}"
            live = Prediction(rid, "churn", "v1", Role.LIVE, 1_000, "yes", latency_ms=5.0)
            shadow = Prediction(rid, "churn", version, Role.SHADOW, 1_000, "no", latency_ms=7.0)
            event = JoinEvent(JoinKind.PAIRED, name, rid, 1_000, live, shadow)
            broker.append(TOPIC, name.encode(), CODEC.encode(JoinEventBatch((event,))))


def _judge(broker: FakeBroker, data_dir: Path) -> JudgeStage:
    """A stage-2 worker that has read everything there is."""
    stage = JudgeStage(
        SETTINGS, EXPERIMENTS, GROUP, JoinMetrics(), data_dir, clients=FakeClients(broker)
    )
    stage.start()
    while stage.poll(0):
        pass
    return stage


def _delete_all(broker: FakeBroker) -> dict[int, int]:
    """Delete every record of the join events; returns the log starts."""
    ends = {p: len(log) for p, log in enumerate(broker.topics[TOPIC])}
    for partition, end in ends.items():
        broker.delete_records(TOPIC, partition, end)
    return ends


def _lost(stage: JudgeStage) -> float:
    sample = stage.metrics.registry.get_sample_value("shadow_join_lost_total", {"topic": TOPIC})
    return sample or 0


def _loss_alerts(broker: FakeBroker) -> list[tuple[str, int]]:
    alerts = [CODEC.decode(value) for _, value in broker.records(SETTINGS.topics.alerts)]
    return sorted(
        (a.experiment, a.result.n) for a in alerts if isinstance(a, Alert) and a.rule == LOSS_RULE
    )


def _expected_alerts(lost: dict[int, int]) -> list[tuple[str, int]]:
    """One alert per experiment, of its partition's lost records."""
    return sorted((name, lost[partition_of(name.encode(), 3)]) for name in CANDIDATES)


def test_without_a_checkpoint_the_events_past_the_group_offset_count_once(
    tmp_path: Path,
) -> None:
    broker = _broker()
    _pair(broker, range(10))
    first = _judge(broker, tmp_path / "first")
    first.close()  # checkpoints, and commits their offsets
    committed = {p: offset for (_, p), offset in broker.committed[GROUP].items()}
    _pair(broker, range(10, 17))  # judged by nobody before they are deleted
    ends = _delete_all(broker)
    lost = {p: ends[p] - committed.get(p, 0) for p in ends if ends[p]}
    assert sum(lost.values()) == 7 * len(CANDIDATES)

    # Another worker's data dir: no checkpoint. It counts from the group's offset.
    other = _judge(broker, tmp_path / "other")
    assert _lost(other) == 7 * len(CANDIDATES)
    assert _loss_alerts(broker) == _expected_alerts(lost)
    assert {p: o for (_, p), o in broker.committed[GROUP].items()} == ends  # counted: committed
    # It crashes before any checkpoint; its restart finds no checkpoint again, nothing new.
    again = _judge(broker, tmp_path / "other")
    assert _lost(again) == 0
    again.close()
    # The first worker's checkpoint (below the log start) with the group's offset: nothing.
    stale = _judge(broker, tmp_path / "first")
    assert _lost(stale) == 0
    assert stale.offset_loss.alerts == 0
    stale.publish_reports()
    assert stale.latest["worse"]["counts"]["paired"] == 10  # its checkpoint's state
    stale.close()
    assert _loss_alerts(broker) == _expected_alerts(lost)


def test_a_checkpoint_newer_than_the_group_offset_counts_from_the_checkpoint(
    tmp_path: Path,
) -> None:
    broker = _broker()
    _pair(broker, range(10))
    first = _judge(broker, tmp_path)
    first.close()
    for where in broker.committed[GROUP]:  # as if its commits had not landed
        broker.committed[GROUP][where] = 3
    _pair(broker, range(10, 14))
    ends = _delete_all(broker)
    second = _judge(broker, tmp_path)
    assert _lost(second) == 4 * len(CANDIDATES)  # not from the older group offset
    lost = {p: 4 * sum(partition_of(n.encode(), 3) == p for n in CANDIDATES) for p in ends}
    assert _loss_alerts(broker) == _expected_alerts(lost)
    second.close()


def test_a_new_group_without_a_checkpoint_loses_nothing(tmp_path: Path) -> None:
    broker = _broker()
    _pair(broker, range(10))
    for partition, log in enumerate(broker.topics[TOPIC]):
        broker.delete_records(TOPIC, partition, len(log) - 6 * sum(
            partition_of(n.encode(), 3) == partition for n in CANDIDATES
        ))  # fmt: skip
    stage = _judge(broker, tmp_path)
    assert _lost(stage) == 0 and not _loss_alerts(broker)
    stage.publish_reports()
    assert stage.latest["worse"]["counts"]["paired"] == 6  # read from the log start
    stage.close()
