"""The hook when Kafka is down: calls stay fast, what fits is delivered later, the rest is
dropped and counted exactly. Each test owns a private LocalBroker it can stop."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from streams.broker import LocalBroker
from streams.broker.config import free_port
from streams.hook import ShadowPublisher
from streams.records import Prediction
from streams.settings import Settings, load_settings
from tests.integration.helpers import create_topics
from tests.integration.test_hook import consume

CAPACITY = 150
DURING_OUTAGE = 400
MAX_CALL_SECONDS = 0.05


def _publisher(settings: Settings) -> ShadowPublisher:
    return ShadowPublisher(
        settings,
        model="m",
        version="v1",
        buffer_size=CAPACITY,
        registry=CollectorRegistry(),
        close_at_exit=False,
    )


def _publish_timed(publisher: ShadowPublisher, calls: int, tag: str) -> tuple[list[str], float]:
    """``calls`` one-record publishes (a prediction each); their ids and the slowest call."""
    ids, slowest = [], 0.0
    for i in range(calls):
        start = time.perf_counter()
        ids.append(publisher.publish(None, float(i), request_id=f"{tag}-{i}"))
        slowest = max(slowest, time.perf_counter() - start)
    return ids, slowest


def _settings(port: int) -> Settings:
    return load_settings(
        kafka_bootstrap=f"127.0.0.1:{port}", topic_prefix=f"t{uuid.uuid4().hex[:8]}"
    )


def test_broker_down_when_the_app_starts(broker_factory: Callable[..., LocalBroker]) -> None:
    port = free_port()
    broker = broker_factory(port=port)
    settings = _settings(port)
    with _publisher(settings) as publisher:
        ids, slowest = _publish_timed(publisher, DURING_OUTAGE, "early")
        assert slowest < MAX_CALL_SECONDS
        assert publisher.flush(0.5) == CAPACITY  # held, not lost
        counters = publisher.counters
        assert (counters.published, counters.dropped) == (CAPACITY, DURING_OUTAGE - CAPACITY)

        broker.start(timeout=120)
        create_topics(settings)
        assert publisher.flush(60) == 0
        counters = publisher.counters
        assert counters.delivered == CAPACITY
        assert counters.dropped == DURING_OUTAGE - CAPACITY
        assert counters.failed == counters.errors == 0

    got = consume(settings, [settings.topics.live_predictions], CAPACITY)
    assert sorted(c.record.request_id for c in got) == sorted(ids[:CAPACITY])  # type: ignore[union-attr]


def test_broker_stopped_mid_run(broker_factory: Callable[..., LocalBroker]) -> None:
    broker = broker_factory()
    broker.start(timeout=120)
    settings = _settings(int(broker.bootstrap.rpartition(":")[2]))
    create_topics(settings)
    with _publisher(settings) as publisher:
        before, _ = _publish_timed(publisher, 100, "before")
        assert publisher.flush(30) == 0

        broker.stop()
        during, slowest = _publish_timed(publisher, DURING_OUTAGE, "during")
        assert slowest < MAX_CALL_SECONDS
        counters = publisher.counters
        assert counters.dropped == DURING_OUTAGE - CAPACITY
        assert counters.in_flight == CAPACITY

        broker.start(timeout=120)
        assert publisher.flush(60) == 0
        counters = publisher.counters
        assert counters.delivered == 100 + CAPACITY
        assert counters.dropped == DURING_OUTAGE - CAPACITY
        assert counters.failed == counters.errors == 0

    expected = before + during[:CAPACITY]
    got = consume(settings, [settings.topics.live_predictions], len(expected))
    ids = [c.record.request_id for c in got]  # type: ignore[union-attr]
    assert sorted(ids) == sorted(expected)  # all of them, none twice
    assert all(isinstance(c.record, Prediction) for c in got)
