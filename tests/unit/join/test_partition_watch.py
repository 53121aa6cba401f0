"""Partitions added while the join runs stop it with one clear error; an unreachable
cluster does not."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from streams.join.partition_watch import PartitionWatch
from streams.settings import TopicNames
from streams.topics import TopicError, co_partitioned, partition_mismatch
from tests.unit.kafka.fakes import FakeBroker, FakeClients

NAMES = TopicNames.from_prefix("p")


def _watch(broker: FakeBroker) -> PartitionWatch:
    consumer = FakeClients(broker).consumer({"group.id": "g"})
    return PartitionWatch(consumer, co_partitioned(NAMES), broker.partitions, every_s=10)


def test_added_partitions_are_refused_naming_the_topics_and_counts() -> None:
    broker = FakeBroker()
    broker.create(*NAMES.all)
    watch = _watch(broker)
    watch.check(0.0)  # all at 3: nothing to say
    broker.topics[NAMES.inputs].extend([[], [], []])
    watch.check(5.0)  # not due yet
    with pytest.raises(TopicError) as raised:
        watch.check(10.0)
    message = str(raised.value)
    assert message.startswith("partitions changed while the join runs: ")
    assert "p.inputs=6" in message and "p.join.state=3" in message
    assert "must have 3 partitions" in message and "Adding partitions" in message


def test_topics_outside_the_join_may_have_any_count() -> None:
    broker = FakeBroker()
    broker.create(*NAMES.all)
    broker.topics[NAMES.metrics].append([])
    _watch(broker).check(0.0)


def test_a_cluster_that_does_not_answer_is_looked_at_again_later() -> None:
    broker = FakeBroker()
    broker.create(*NAMES.all)
    watch = _watch(broker)

    def down(*args: object, **kwargs: object) -> None:
        raise KafkaException(KafkaError(KafkaError._TRANSPORT))

    watch.consumer.list_topics = down  # type: ignore[method-assign]
    watch.check(0.0)
    assert watch._due == 10.0


def test_the_join_topics_are_co_partitioned_with_the_per_request_ones() -> None:
    assert co_partitioned(NAMES) == (*NAMES.per_request, "p.join.state", "p.join.events")
    assert partition_mismatch({"a": 3, "b": 3}) is None
    assert partition_mismatch({"a": 3, "b": 6}) == (
        'a=3, b=6 must have one partition count; see README "Adding partitions"'
    )
