"""Helpers of integration tests: create and delete topics with a confluent AdminClient.

The product command ``shadow-eval topics create`` lives in ``streams.cli.topics``; these
helpers only give tests their own throw-away topics.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterable, Iterator

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streams import topics
from streams.kafka.config import client_config
from streams.settings import Settings

__all__ = [
    "admin_client",
    "broker_answers",
    "create_topics",
    "delete_topics",
    "every_record",
    "re_create_topics",
]


def admin_client(settings: Settings) -> AdminClient:
    """An AdminClient with the settings' bootstrap and security options."""
    return AdminClient(client_config(settings))


def broker_answers(bootstrap: str, timeout: float = 10.0) -> str | None:
    """``None`` if a broker at ``bootstrap`` answers a metadata request, else the reason."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        return f"no metadata from {bootstrap} within {timeout:.0f}s: {exc}"
    return None if metadata.brokers else f"{bootstrap} answered with no brokers"


def create_topics(
    settings: Settings,
    names: Iterable[str] | None = None,
    *,
    partitions: int | None = None,
    timeout: float = 30.0,
) -> list[str]:
    """Create ``names`` (default: every topic of ``settings.topics``); existing ones are fine.

    Returns the topic names, for convenience.
    """
    topics = list(names) if names is not None else list(settings.topics.all)
    count = partitions if partitions is not None else settings.partitions
    new = [
        NewTopic(t, num_partitions=count, replication_factor=settings.replication_factor)
        for t in topics
    ]
    admin = admin_client(settings)  # keep a reference: a destroyed client fails its futures
    futures = admin.create_topics(new, operation_timeout=timeout)
    for topic, future in futures.items():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise AssertionError(f"creating topic {topic!r} failed: {exc}") from exc
    return topics


def delete_topics(settings: Settings, prefix: str | None = None, timeout: float = 10.0) -> None:
    """Best-effort deletion of every topic starting with ``prefix`` (the settings' prefix)."""
    admin = admin_client(settings)
    prefix = f"{prefix or settings.topic_prefix}."
    names = [t for t in admin.list_topics(timeout=timeout).topics if t.startswith(prefix)]
    if not names:
        return
    for future in admin.delete_topics(names, operation_timeout=timeout).values():
        with contextlib.suppress(KafkaException):
            future.result(timeout=timeout)


def every_record(settings: Settings) -> Iterator[tuple[str, bytes]]:
    """``(topic, value)`` of every record in every topic of ``settings``: all partitions
    assigned at once, each done at its end-of-partition event (its last offsets may be
    transaction markers, which are never delivered)."""
    config = {"group.id": f"every-{uuid.uuid4().hex}", "enable.partition.eof": True}
    consumer = Consumer(client_config(settings, **config))
    try:
        listing = consumer.list_topics(timeout=10).topics
        partitions = [
            TopicPartition(topic, partition, OFFSET_BEGINNING)
            for topic in settings.topics.all
            for partition in listing[topic].partitions
        ]
        consumer.assign(partitions)
        pending = {(tp.topic, tp.partition) for tp in partitions}
        deadline = time.monotonic() + 60
        while pending and time.monotonic() < deadline:
            for message in consumer.consume(1000, timeout=1):
                error, value = message.error(), message.value()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.discard((message.topic(), message.partition()))
                elif value:  # skip tombstones
                    yield message.topic(), value
        assert not pending, f"never reached the end of {sorted(pending)}"
    finally:
        consumer.close()


def re_create_topics(settings: Settings, timeout: float = 60) -> None:
    """Delete the settings' topics, wait until they are gone, and create them again."""
    delete_topics(settings)
    admin = admin_client(settings)
    deadline = time.monotonic() + timeout
    while any(
        t.startswith(f"{settings.topic_prefix}.") for t in admin.list_topics(timeout=10).topics
    ):
        assert time.monotonic() < deadline, "the old topics were never deleted"
        time.sleep(0.5)
    topics.create_topics(settings)  # the project's own: the changelog compacted


def wait_for_topics(settings: Settings, timeout: float = 60.0) -> None:
    """Until every topic of ``settings`` shows in the broker's metadata with its partitions
    (a topic just created may not yet, and a client that looks too early sees none)."""
    from streams.topics import describe_topics

    deadline = time.monotonic() + timeout
    while any(s.partitions is None for s in describe_topics(settings)):
        assert time.monotonic() < deadline, "the created topics never showed in the metadata"
        time.sleep(0.2)
