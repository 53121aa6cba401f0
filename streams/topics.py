"""Create shadow-eval's topics and check that the per-request ones are co-partitioned.

One join worker must own every record of a request, so the topics keyed by request id
need the same partition count (and the same default partitioner, which every producer
of ours uses).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

from streams.kafka.clients import CONFLUENT, KafkaClients
from streams.kafka.config import admin_config
from streams.kafka.problems import explain, metadata
from streams.partitioning import murmur2
from streams.settings import Settings, TopicNames

__all__ = [
    "TopicError",
    "TopicStatus",
    "check_topics",
    "co_partitioned",
    "create_topics",
    "partition_mismatch",
    "partition_of",
]

log = logging.getLogger(__name__)


class TopicError(RuntimeError):
    """A topic problem that stops shadow-eval from running correctly."""


@dataclass(frozen=True, slots=True)
class TopicStatus:
    name: str
    partitions: int | None
    """None when the topic does not exist."""


def partition_of(key: bytes, partitions: int) -> int:
    """The partition every shadow-eval producer (murmur2, as the Java client) sends ``key`` to."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def describe_topics(
    settings: Settings, timeout: float = 10.0, *, clients: KafkaClients = CONFLUENT
) -> list[TopicStatus]:
    """Each of shadow-eval's topics with its partition count (None: missing)."""
    admin = clients.admin(admin_config(settings, quiet=True))  # a failure is raised
    try:
        listing = metadata(admin, settings.kafka_bootstrap, timeout)
    except KafkaException as exc:
        why = explain(settings.kafka_bootstrap, exc, admin)
        raise TopicError(f"cannot reach Kafka at {settings.kafka_bootstrap}: {why}") from None
    return [
        TopicStatus(name, len(listing.topics[name].partitions) if name in listing.topics else None)
        for name in settings.topics.all
    ]


def create_topics(
    settings: Settings, timeout: float = 30.0, only: tuple[str, ...] | None = None
) -> list[str]:
    """Create every missing topic (or those of ``only``) with ``settings.partitions``;
    returns the names created."""
    existing = {s.name for s in describe_topics(settings) if s.partitions is not None}
    compacted = settings.topics.compacted
    wanted = [
        NewTopic(
            name,
            settings.partitions,
            settings.replication_factor,
            config={"cleanup.policy": "compact"} if name in compacted else {},
        )
        for name in (settings.topics.all if only is None else only)
        if name not in existing
    ]
    if wanted:
        # The client must outlive the futures: its destruction cancels them.
        admin = CONFLUENT.admin(admin_config(settings))
        futures = admin.create_topics(wanted, operation_timeout=timeout)
        for name, future in futures.items():
            try:
                future.result(timeout=timeout)
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise TopicError(f"cannot create topic {name}: {exc}") from exc
            log.info("created topic %s with %d partitions", name, settings.partitions)
        _wait_until_listed(settings, {topic.topic for topic in wanted}, timeout)
    check_topics(settings)
    return [topic.topic for topic in wanted]


LISTED_IN_A_ROW = 3
"""Metadata answers in a row that must list a new topic: each may come from another
broker of a cluster, and each broker learns of the topic on its own time."""


def _wait_until_listed(settings: Settings, names: set[str], timeout: float) -> None:
    """Until the brokers' metadata lists ``names``: a broker that has just (re)started
    can answer a metadata request before it has caught up with the topics it created."""
    deadline = time.monotonic() + timeout
    in_a_row = 0
    while time.monotonic() < deadline:
        listed = {s.name for s in describe_topics(settings) if s.partitions is not None}
        in_a_row = in_a_row + 1 if names <= listed else 0
        if in_a_row >= LISTED_IN_A_ROW:
            return
        time.sleep(0.2)


def co_partitioned(names: TopicNames) -> tuple[str, ...]:
    """The topics that must share one partition count: the per-request topics, the
    join's state changelog (a request's state lives in its inputs' partition) and its
    events (both join stages place an experiment by the same count)."""
    return (*names.per_request, names.join_state, names.join_events)


def partition_mismatch(counts: Mapping[str, int], expected: int | None = None) -> str | None:
    """``None`` when every topic of ``counts`` has ``expected`` partitions (or, without
    ``expected``, all have one count), else a sentence naming the topics and counts.

    Examples
    --------
    >>> partition_mismatch({"p.inputs": 6, "p.join.state": 3})
    'p.inputs=6, p.join.state=3 must have one partition count; see README "Adding partitions"'
    >>> partition_mismatch({"p.inputs": 3}, 3) is None
    True
    """
    wanted = {expected} if expected is not None else set(counts.values())
    if set(counts.values()) <= wanted and len(wanted) <= 1:
        return None
    listing = ", ".join(f"{name}={count}" for name, count in counts.items())
    target = f"{expected} partitions" if expected is not None else "one partition count"
    return f'{listing} must have {target}; see README "Adding partitions"'


def check_topics(settings: Settings) -> list[TopicStatus]:
    """Every topic exists, and the per-request and join topics share one partition count."""
    statuses = describe_topics(settings)
    missing = [s.name for s in statuses if s.partitions is None]
    if missing:
        raise TopicError(f"missing topics: {', '.join(missing)} (run `shadow-eval topics create`)")
    together = co_partitioned(settings.topics)
    problem = partition_mismatch(
        {s.name: s.partitions for s in statuses if s.name in together and s.partitions}
    )
    if problem is not None:
        raise TopicError(f"topics not co-partitioned (the join would miss pairs): {problem}")
    return statuses
