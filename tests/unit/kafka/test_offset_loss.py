"""Offsets out of range: counted once, alerted on the alerts topic, the partition restarted."""

from __future__ import annotations

from collections import Counter
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from streams.codec import Codec
from streams.kafka.offset_loss import LOSS_RULE, OffsetLoss
from streams.records import Alert, AlertState
from streams.settings import Settings
from tests.unit.kafka.fakes import FakeBroker, FakeClients, FakeError, FakeMessage

SETTINGS = Settings(topic_prefix="t")
CODEC = Codec()
TOPIC = SETTINGS.topics.inputs


class Consumer:
    """What the handler asks of a consumer: watermarks, the assignment, positions."""

    def __init__(self, watermarks: tuple[int, int], assigned: dict[int, int]) -> None:
        self.watermarks = watermarks
        self.assigned = [TopicPartition(TOPIC, p, o) for p, o in assigned.items()]
        self.positions = dict.fromkeys(assigned, -1001)
        self.calls: list[tuple[str, list[tuple[int, int]]]] = []

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float = -1) -> tuple[int, int]:
        return self.watermarks

    def assignment(self) -> list[TopicPartition]:
        return self.assigned

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, self.positions[tp.partition])
                for tp in partitions]  # fmt: skip

    def _record(self, name: str, partitions: list[TopicPartition]) -> None:
        self.calls.append((name, [(tp.partition, tp.offset) for tp in partitions]))

    def assign(self, partitions: list[TopicPartition]) -> None:
        self._record("assign", partitions)

    def pause(self, partitions: list[TopicPartition]) -> None:
        self._record("pause", partitions)

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        self._record("incremental_assign", partitions)

    def incremental_unassign(self, partitions: list[TopicPartition]) -> None:
        self._record("incremental_unassign", partitions)


def reset_event(partition: int, offset: Any) -> FakeMessage:
    error = FakeError(KafkaError._AUTO_OFFSET_RESET, "Broker: Offset out of range")
    return FakeMessage(TOPIC, partition, offset, _error=error)


def handler(**kwargs: Any) -> tuple[OffsetLoss, FakeBroker, Counter[str]]:
    broker = FakeBroker()
    broker.create(SETTINGS.topics.alerts)
    counted: Counter[str] = Counter()

    def on_lost(topic: str, records: int) -> None:
        counted[topic] += records

    loss = OffsetLoss(SETTINGS, "join stage 1", on_lost, CODEC, clients=FakeClients(broker),
                      **kwargs)  # fmt: skip
    return loss, broker, counted


def alerts(broker: FakeBroker) -> list[Alert]:
    found = [CODEC.decode(value) for _, value in broker.records(SETTINGS.topics.alerts)]
    assert all(isinstance(a, Alert) for a in found)
    return found  # type: ignore[return-value]


def test_a_gap_below_the_log_start_is_counted_alerted_and_skipped_once() -> None:
    loss, broker, counted = handler()
    consumer = Consumer((40, 90), {0: -1001, 1: -1001, 2: -2})
    consumer.positions[1] = 57  # partition 1 was read up to 57: it goes on from there
    assert loss.handle(consumer, reset_event(0, 10))
    assert counted == {TOPIC: 30} and loss.lost == {TOPIC: 30}
    [alert] = alerts(broker)
    assert (alert.rule, alert.state, alert.severity, alert.result.n) == (
        LOSS_RULE,
        AlertState.FIRING,
        "critical",
        30,
    )
    assert "offsets 10 to 39" in alert.message and "join stage 1" in alert.message
    # Only partition 0 moves; 2 restarts from where it was assigned (the beginning).
    assert consumer.calls == [("assign", [(0, 40), (1, 57), (2, -2)])]

    # Sent back into the same gap (an aborted transaction's rewind): nothing new.
    assert loss.handle(consumer, reset_event(0, 10))
    assert counted == {TOPIC: 30} and len(alerts(broker)) == 1
    # The log start moved on: only the new part counts.
    consumer.watermarks = (55, 90)
    assert loss.handle(consumer, reset_event(0, 40))
    assert counted == {TOPIC: 45} and alerts(broker)[-1].result.n == 15


def test_no_committed_offset_starts_where_the_group_starts_and_loses_nothing() -> None:
    for start, expected in (("earliest", OFFSET_BEGINNING), ("latest", OFFSET_END)):
        loss, broker, counted = handler(start=start, cooperative=True)
        consumer = Consumer((40, 90), {0: -1001})
        assert loss.handle(consumer, reset_event(0, None))
        assert consumer.calls == [
            ("incremental_unassign", [(0, -1001)]),
            ("incremental_assign", [(0, expected)]),
        ]
        assert not counted and not alerts(broker)


def test_a_truncated_log_is_alerted_and_read_from_its_end() -> None:
    loss, broker, counted = handler(experiments=lambda partition: ["churn-v2", "churn-v3"])
    consumer = Consumer((0, 20), {0: -1001})
    assert loss.handle(consumer, reset_event(0, 35))  # once: retried where it was
    assert consumer.calls == [("assign", [(0, 35)])] and not alerts(broker)
    consumer.calls.clear()
    assert loss.handle(consumer, reset_event(0, 35))
    assert not counted
    found = alerts(broker)
    assert sorted(a.experiment for a in found) == ["churn-v2", "churn-v3"]
    assert "truncated to offset 20" in found[0].message
    assert consumer.calls == [("assign", [(0, 20)])]


def test_other_errors_are_left_to_the_caller() -> None:
    loss, broker, _ = handler()
    consumer = Consumer((0, 20), {0: -1001})
    eof = FakeMessage(TOPIC, 0, 20, _error=FakeError(KafkaError._PARTITION_EOF, "eof"))
    assert not loss.handle(consumer, eof)
    assert not loss.handle(consumer, FakeMessage(TOPIC, 0, 3, b"k", b"v"))
    assert not consumer.calls and not alerts(broker)


def test_a_gap_found_at_a_checkpoint_is_alerted_per_experiment() -> None:
    loss, broker, counted = handler(experiments=lambda partition: ["a", "b"][: partition + 1])
    assert loss.gap(TOPIC, 1, 5, 12) == 7
    assert loss.gap(TOPIC, 1, 5, 12) == 0
    assert counted == {TOPIC: 7}
    assert sorted((a.experiment, a.result.n) for a in alerts(broker)) == [("a", 7), ("b", 7)]


def test_a_paused_assignment_stays_paused() -> None:
    restoring = [True]
    loss, _, _ = handler(paused=lambda: restoring[0])
    consumer = Consumer((0, 90), {0: -1001, 1: -1001})
    assert loss.handle(consumer, reset_event(1, None))
    assert consumer.calls == [("assign", [(0, -1001), (1, -2)]), ("pause", [(0, -1001), (1, -2)])]
    restoring[0] = False
    consumer.calls.clear()
    assert loss.handle(consumer, reset_event(0, None))
    assert [name for name, _ in consumer.calls] == ["assign"]


def test_a_reassignment_refused_mid_rebalance_is_left_to_the_rebalance() -> None:
    class Rebalancing(Consumer):
        def assign(self, partitions: list[TopicPartition]) -> None:
            raise KafkaException(FakeError(KafkaError._STATE, "rebalance in progress"))

    loss, broker, counted = handler()
    assert loss.handle(Rebalancing((40, 90), {0: -1001}), reset_event(0, 10))
    assert counted == {TOPIC: 30} and len(alerts(broker)) == 1  # counted all the same
