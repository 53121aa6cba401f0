"""Join stage 1's persistent ``rocksdb://`` state on the real broker: a revocation keeps a
partition's store for when it comes back, a kill -9 and restart replays only the
changelog's tail and restores exactly what a full rebuild does, and a store made from a
changelog topic since deleted and created again is rebuilt, not trusted.

Ten thousand requests wait for candidates that never come (a long pair TTL): the state a
restart must bring back. Stage 1 runs alone (``--stage pairs``), in subprocesses.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from streams.codec import Codec
from streams.join.stage_judge import events_of
from streams.kafka.config import client_config
from streams.records import JoinKind, Prediction, Role
from streams.settings import Settings, load_settings
from streams.topics import create_topics, partition_of
from tests.integration.helpers import delete_topics, re_create_topics
from tests.integration.join_helpers import JoinProcess
from tests.unit.join.experiments_toml import CANDIDATES_TOML

pytestmark = pytest.mark.integration

PENDING = 10_000
PAIRED = 3_000
GROUP_APP = "shadow-eval-join"
RESTORED = re.compile(
    r"restored (\d+) requests in [\d.]+s, replaying (\d+) changelog records \(rebuilt: (.*)\)$"
)


def _experiments(directory: Path) -> Path:
    path = directory / "experiments.toml"
    text = CANDIDATES_TOML.format(pair_ttl=3600, label_ttl=7200)
    path.write_text(text.replace("[join]\n", '[join]\nstore = "rocksdb://"\n', 1))
    return path


@pytest.fixture
def settings(kafka_bootstrap: str) -> Iterator[Settings]:
    settings = load_settings(
        kafka_bootstrap=kafka_bootstrap, topic_prefix=f"state{time.time_ns() % 10**8}", partitions=3
    )
    create_topics(settings)
    yield settings
    delete_topics(settings)


def _produce(settings: Settings, ids: range, role: Role, version: str, prefix: str = "r") -> None:
    codec = Codec()
    topic = (
        settings.topics.live_predictions
        if role is Role.LIVE
        else settings.topics.shadow_predictions
    )
    producer = Producer(client_config(settings, **{"linger.ms": 20}))
    for i in ids:
        request_id = f"{prefix}{i}"
        record = Prediction(request_id, "churn", version, role, 1_000 + i, "yes", latency_ms=5.0)
        key = request_id.encode()
        producer.produce(topic, codec.encode(record), key, partition_of(key, settings.partitions))
        producer.poll(0)
    assert producer.flush(30) == 0


COORDINATOR_MOVING = {
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
}


def _committed(settings: Settings) -> int:
    """Input records stage 1 committed (all its input topics)."""
    consumer = Consumer(
        client_config(settings, **{"group.id": f"{GROUP_APP}-{settings.topic_prefix}"})
    )
    try:
        topics = (settings.topics.live_predictions, settings.topics.shadow_predictions)
        wanted = [TopicPartition(t, p) for t in topics for p in range(settings.partitions)]
        return sum(max(tp.offset, 0) for tp in consumer.committed(wanted, timeout=10))
    except KafkaException as exc:
        if exc.args[0].code() not in COORDINATOR_MOVING:
            raise
        return 0  # the group's coordinator is not ready yet: ask again
    finally:
        consumer.close()


def _wait_committed(settings: Settings, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while (done := _committed(settings)) < count:
        assert time.monotonic() < deadline, f"stage 1 committed {done} of {count} records"
        time.sleep(0.5)


def _paired(settings: Settings) -> Counter[str]:
    """Request ids of the "worse" experiment's PAIRED events (read_committed)."""
    consumer = Consumer(
        client_config(
            settings,
            **{
                "group.id": f"events-{time.time_ns()}",
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
            },
        )
    )
    codec, paired = Codec(), Counter[str]()
    topic = settings.topics.join_events
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(settings.partitions)])
        at_end: set[int] = set()
        while len(at_end) < settings.partitions:
            for message in consumer.consume(1000, 1.0):
                if message.error():
                    at_end.add(message.partition())
                    continue
                for event in events_of(codec.decode(message.value())):
                    if event.kind is JoinKind.PAIRED and event.experiment == "worse":
                        paired[event.request_id] += 1
    finally:
        consumer.close()
    return paired


def _restores(log: Path, count: int = 1, timeout: float = 60) -> list[tuple[int, int, str]]:
    """(requests restored, changelog records replayed, rebuilt) of each assignment logged."""
    deadline = time.monotonic() + timeout
    while True:
        found = [
            (int(m[1]), int(m[2]), m[3])
            for line in log.read_text(errors="replace").splitlines()
            if (m := RESTORED.search(line))
        ]
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, (
            f"{log.name}: no restore logged:\n{log.read_text()[-2000:]}"
        )
        time.sleep(0.3)


def test_revocation_and_kill_9_replay_only_the_tail_and_equal_a_full_rebuild(
    settings: Settings, tmp_path: Path
) -> None:
    experiments = _experiments(tmp_path)
    kept, other, fresh = (tmp_path / d for d in ("kept", "other", "fresh"))
    for directory in (kept, other, fresh):
        directory.mkdir()
    _produce(settings, range(PENDING), Role.LIVE, "v1")
    first = JoinProcess(settings, experiments, kept / "first.log", "--stage", "pairs")
    second = third = None
    try:
        _wait_committed(settings, PENDING)
        # A second worker takes some partitions (the first keeps their stores on disk),
        # pairs part of the requests there, and leaves: they come back to the first.
        second = JoinProcess(settings, experiments, other / "second.log", "--stage", "pairs")
        _restores(second.log)
        _produce(settings, range(PAIRED), Role.SHADOW, "v2")
        _wait_committed(settings, PENDING + PAIRED)
        second.stop()
        (*_, back) = _restores(first.log, count=3)  # all, then a share, then all again
        assert back[0] == PENDING and back[2] == "none", back
        assert 0 < back[1] <= PAIRED + 10, back  # what the second worker wrote, not all
        _produce(settings, range(PENDING, PENDING + 500), Role.LIVE, "v1")
        _wait_committed(settings, PENDING + PAIRED + 500)
        first.kill()
        third = JoinProcess(settings, experiments, kept / "third.log", "--stage", "pairs")
        (restarted,) = _restores(third.log)
        third.stop()
        rebuilt = JoinProcess(settings, experiments, fresh / "rebuilt.log", "--stage", "pairs")
        (full,) = _restores(rebuilt.log)
        rebuilt.stop()
    finally:
        for process in (first, second, third):
            if process is not None:
                process.stop()
    assert restarted[2] == "none" and restarted[1] < full[1] / 2, (restarted, full)
    assert full[2].startswith("{") and "no offset recorded" in full[2]
    assert restarted[0] == full[0] == PENDING + 500
    paired = _paired(settings)
    assert set(paired) == {f"r{i}" for i in range(PAIRED)} and set(paired.values()) == {1}


def test_a_store_of_a_re_created_changelog_is_rebuilt_not_trusted(
    settings: Settings, tmp_path: Path
) -> None:
    experiments = _experiments(tmp_path)
    _produce(settings, range(PENDING), Role.LIVE, "v1", prefix="old")
    first = JoinProcess(settings, experiments, tmp_path / "first.log", "--stage", "pairs")
    try:
        _wait_committed(settings, PENDING)
    finally:
        first.stop()
    re_create_topics(settings)
    _produce(settings, range(2_000), Role.LIVE, "v1", prefix="new")
    again = JoinProcess(settings, experiments, tmp_path / "again.log", "--stage", "pairs")
    try:
        (restore,) = _restores(again.log)
        _wait_committed(settings, 2_000)
    finally:
        again.stop()
    assert restore[0] == 0 and "another changelog topic" in restore[2], restore
    last = JoinProcess(settings, experiments, tmp_path / "last.log", "--stage", "pairs")
    try:
        (resumed,) = _restores(last.log)
    finally:
        last.stop()
    assert resumed[0] == 2_000 and resumed[2] == "none", resumed  # nothing of the old store
