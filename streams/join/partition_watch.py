"""Stop the join when a topic's partition count moves away from the one it runs with.

Requests are spread over partitions by ``murmur2(request_id) % partitions``: partitions
added to the per-request topics while a request is pending send its later records to
another partition than its state, and the join events of an experiment to another
partition than its earlier ones. Nothing can repair that on the fly, so the join stops
with one clear error naming the topics and counts (README "Adding partitions").
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from confluent_kafka import KafkaException

from streams.kafka import ConsumerLike
from streams.topics import TopicError, partition_mismatch

__all__ = ["PARTITIONS_CHECK_S", "PartitionWatch", "changed_partitions"]

log = logging.getLogger(__name__)

PARTITIONS_CHECK_S = 10.0
"""How often the counts are checked: a change is refused within about this long."""


class PartitionWatch:
    """Raises :class:`~streams.topics.TopicError` from :meth:`check` once one of
    ``topics`` no longer has ``partitions`` partitions.

    Examples
    --------
    >>> watch = PartitionWatch(consumer, ["shadow.inputs"], 6)  # doctest: +SKIP
    >>> watch.check(time.monotonic())  # doctest: +SKIP
    """

    def __init__(
        self,
        consumer: ConsumerLike,
        topics: Iterable[str],
        partitions: int,
        every_s: float = PARTITIONS_CHECK_S,
    ) -> None:
        self.consumer = consumer
        self.topics = set(topics)
        self.partitions = partitions
        self.every_s = every_s
        self._due = 0.0

    def check(self, now: float) -> None:
        if now < self._due:
            return
        self._due = now + self.every_s
        error = changed_partitions(self.consumer, self.topics, self.partitions)
        if error is not None:
            raise error


def changed_partitions(
    consumer: ConsumerLike, topics: Iterable[str], partitions: int
) -> TopicError | None:
    """The error to stop with when one of ``topics`` no longer has ``partitions``
    partitions; None when all have, or when the cluster cannot tell now."""
    wanted = set(topics)
    try:
        metadata = consumer.list_topics(timeout=5.0)
    except KafkaException as exc:  # the cluster is away; the next look will tell
        log.debug("cannot check partition counts: %s", exc)
        return None
    counts = {
        name: len(topic.partitions)
        for name, topic in metadata.topics.items()
        if name in wanted and topic.partitions
    }
    problem = partition_mismatch(counts, partitions)
    return (
        None
        if problem is None
        else TopicError(f"partitions changed while the join runs: {problem}")
    )
