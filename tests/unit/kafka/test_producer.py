"""The producer wrapper: back-pressure, delivery accounting, failures, non-blocking offers."""

from __future__ import annotations

import logging

import pytest

from streams.kafka.producer import ProducerWrapper
from tests.unit.kafka.fakes import FakeBroker, FakeClients


def _producer(limit: int = 2, **kwargs: object) -> tuple[FakeBroker, FakeClients, ProducerWrapper]:
    broker = FakeBroker()
    broker.create("out")
    clients = FakeClients(broker)
    config = {"queue.buffering.max.messages": limit}
    return broker, clients, ProducerWrapper(config, clients=clients, **kwargs)  # type: ignore[arg-type]


def test_a_full_queue_makes_produce_wait_for_deliveries_not_fail() -> None:
    broker, clients, producer = _producer(limit=2)
    for i in range(7):
        producer.produce("out", f"v{i}".encode(), f"k{i}".encode())
    producer.flush(1)
    values = sorted(v for _, v in broker.records("out") if v is not None)
    assert values == [f"v{i}".encode() for i in range(7)]
    assert clients.producers[0].polls >= 3  # it served deliveries to make room
    assert (producer.produced, producer.failed, producer.delivered) == (7, 0, 7)
    assert producer.settled()


def test_produce_all_waits_the_same_way_and_keeps_the_order() -> None:
    broker, _, producer = _producer(limit=3)
    count = producer.produce_all("out", [(f"v{i}".encode(), b"same") for i in range(10)])
    producer.flush(1)
    assert count == producer.produced == 10
    assert [v for _, v in broker.records("out")] == [f"v{i}".encode() for i in range(10)]


def test_offer_never_waits_it_says_no() -> None:
    _, _, producer = _producer(limit=2)
    assert producer.offer("out", b"a", b"k") and producer.offer("out", b"b", b"k")
    assert not producer.offer("out", b"c", b"k")
    assert producer.produced == 2
    producer.poll(0)
    assert producer.offer("out", b"c", b"k")


def test_failed_deliveries_are_counted_and_logged_at_most_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker, _, producer = _producer(limit=100, log=logging.getLogger("test.kafka"))
    broker.failing_topics.add("out")
    with caplog.at_level(logging.WARNING, "test.kafka"):
        for i in range(5):
            producer.produce("out", b"v", str(i).encode())
        producer.flush(1)
    assert (producer.produced, producer.failed, producer.delivered) == (5, 5, 0)
    assert producer.last_failure is not None
    assert len([r for r in caplog.records if "delivery to out failed" in r.message]) == 1


def test_a_failure_callback_reports_instead_of_the_wrapper(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[str] = []
    broker, _, producer = _producer(
        limit=100, on_failure=lambda err, msg: seen.append(msg.topic()), prefix="hook: "
    )
    broker.failing_topics.add("out")
    with caplog.at_level(logging.WARNING):
        producer.produce("out", b"v", b"k")
        producer.poll(0)
    assert seen == ["out"] and producer.failed == 1
    assert not [r for r in caplog.records if "delivery" in r.message]


def test_delivered_never_counts_what_is_still_queued() -> None:
    _, _, producer = _producer(limit=100)
    producer.produce("out", b"v", b"k")
    producer.produce("out", b"w", b"k")
    assert producer.delivered == 0 and not producer.settled()
    producer.poll(0)
    assert producer.delivered == 2 and producer.settled()
