"""What a consumer owns: its lag, pausing it, and a short description for logs."""

from __future__ import annotations

import logging
import time

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from streams.kafka.clients import ConsumerLike

__all__ = ["assignment_lag", "describe_partitions", "leave_group", "pause_assignment", "watermarks"]

log = logging.getLogger("streams.kafka")

_LEADERLESS = frozenset({
    KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_PARTITION,
})  # fmt: skip


def watermarks(
    consumer: ConsumerLike, where: TopicPartition, wait_s: float = 60
) -> tuple[int, int]:
    """A partition's low and high offsets, waiting up to ``wait_s`` while it has no
    leader yet (a topic created just before, on a loaded broker) instead of failing
    the assignment that asks."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            low, high = consumer.get_watermark_offsets(where, timeout=10)
            return low, high
        except KafkaException as exc:
            if exc.args[0].code() not in _LEADERLESS or time.monotonic() > deadline:
                raise
            log.info("%s[%d] has no leader yet: %s", where.topic, where.partition, exc)
            time.sleep(0.5)


def assignment_lag(consumer: ConsumerLike) -> int:
    """Messages not yet consumed on the assigned partitions (cached watermarks).

    Raises
    ------
    KafkaException
        The consumer cannot tell (closed, broker unreachable).
    """
    assignment = consumer.assignment()
    lag = 0
    for tp in consumer.position(assignment) if assignment else []:
        low, high = consumer.get_watermark_offsets(tp, cached=True)
        if high < 0:
            continue
        start = tp.offset if tp.offset >= 0 else max(low, 0)
        lag += max(high - start, 0)
    return lag


def pause_assignment(consumer: ConsumerLike, pause: bool) -> str | None:
    """Pause (or resume) every assigned partition; the error text if that failed.

    librdkafka drops what it fetched ahead for a paused partition and resumes it at the
    first message the application has not consumed, so nothing is skipped.
    """
    try:
        assignment = consumer.assignment()
        if assignment:
            (consumer.pause if pause else consumer.resume)(assignment)
    except KafkaException as exc:
        return str(exc)
    return None


def describe_partitions(partitions: list[TopicPartition]) -> str:
    """``topic[0, 1], other[3]`` for a log line.

    Examples
    --------
    >>> describe_partitions([TopicPartition("a", 1), TopicPartition("a", 0)])
    'a[0, 1]'
    """
    by_topic: dict[str, list[int]] = {}
    for tp in partitions:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    return ", ".join(f"{t}{sorted(p)}" for t, p in by_topic.items()) or "nothing"


def leave_group(consumer: ConsumerLike, timeout: float = 5.0) -> None:
    """Leave the consumer group now, before ``close()``.

    librdkafka never sends the leave of a static member (``group.instance.id``) on
    close (KIP-345): its partitions wait a session timeout for it to come back. An
    unsubscribe sends it once the revocation is served (the revoke callback runs in the
    polls here; a message they return is dropped: its offset was not committed).
    """
    consumer.unsubscribe()
    deadline = time.monotonic() + timeout
    while consumer.memberid() and time.monotonic() < deadline:
        consumer.poll(0.05)
    if consumer.memberid():
        log.warning("could not leave group (member %s) within %.0fs: its partitions move "
                    "after the session timeout", consumer.memberid(), timeout)  # fmt: skip
