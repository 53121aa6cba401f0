"""A transaction's commit outlives a frozen broker: it is resumed, never given up for an abort.

librdkafka keeps a timed-out ``commit_transaction`` going in the background; until the
same call is made again, every other transactional call (``abort_transaction`` among
them) fails at once with a retriable ``_CONFLICT``. A batch that gave up on the commit
and aborted instead spun on that error for as long as the process lived.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import Consumer, TopicPartition

from streams.broker import LocalBroker
from streams.kafka import CONFLUENT, ProducerWrapper, TransactionalBatch
from streams.kafka.config import group_config, transactional_config
from streams.settings import load_settings
from tests.integration.helpers import create_topics

FROZEN_S = 10.0
"""Long enough for several commit calls of ``CALL_TIMEOUT_S`` to time out."""
CALL_TIMEOUT_S = 1.0


class Unwatched:
    @contextlib.contextmanager
    def guard(self, what: str) -> Iterator[None]:
        yield


@pytest.mark.parametrize("offsets", [{}, {("in", 0): 7}], ids=["commit-pending", "offsets-pending"])
def test_a_commit_that_times_out_while_the_broker_is_frozen_goes_through_after(
    broker_factory: Callable[..., LocalBroker], offsets: dict[tuple[str, int], int]
) -> None:
    broker = broker_factory()
    settings = load_settings(kafka_bootstrap=broker.start(), topic_prefix="txn")
    topic, group = f"out-{uuid.uuid4().hex[:6]}", f"g-{uuid.uuid4().hex[:6]}"
    create_topics(settings, [topic, "in"])
    consumer = CONFLUENT.consumer(group_config(settings, group))
    producer = ProducerWrapper(
        transactional_config(settings, group, timeout_ms=120_000), clients=CONFLUENT
    )
    rewinds: list[int] = []
    batch = TransactionalBatch(
        producer, consumer, Unwatched(), lambda: rewinds.append(1), timeout_s=CALL_TIMEOUT_S
    )
    batch.init()
    batch.begin()
    for n in range(10):
        batch.produce(topic, str(n).encode(), b"k", 0)

    outcome: list[bool] = []
    broker.pause()
    committing = threading.Thread(target=lambda: outcome.append(batch.commit(offsets)))
    committing.start()
    time.sleep(FROZEN_S)
    assert committing.is_alive()  # still committing, not given up
    broker.resume()
    committing.join(timeout=90)

    assert not committing.is_alive(), "the commit never came back after the broker did"
    assert outcome == [True] and rewinds == [] and batch.aborted == 0
    assert _committed_values(settings.kafka_bootstrap, topic, 10) == [str(n) for n in range(10)]
    if offsets:
        committed = consumer.committed([TopicPartition("in", 0)], timeout=10)
        assert committed[0].offset == 7
    consumer.close()


def _committed_values(bootstrap: str, topic: str, count: int) -> list[str]:
    """The first ``count`` values a ``read_committed`` reader gets within 30 s.

    A commit returns once the coordinator logged it; the markers that let readers past
    the records follow, so the end of the partition may come before the records do.
    """
    reader = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"r-{uuid.uuid4().hex[:6]}",
        "isolation.level": "read_committed",
    })  # fmt: skip
    reader.assign([TopicPartition(topic, 0, 0)])
    values: list[str] = []
    deadline = time.monotonic() + 30
    while len(values) < count and time.monotonic() < deadline:
        message = reader.poll(1.0)
        if message is not None and not message.error():
            values.append(message.value().decode())
    reader.close()
    return values
