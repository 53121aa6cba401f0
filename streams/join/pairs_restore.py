"""Join stage 1's state restore: the local store from the ``<prefix>.join.state`` changelog.

After an assignment, and after an aborted transaction (a rewind), stage 1 reads the
changelog partitions of the input partitions it owns from the beginning to their
committed end (``read_committed``: an aborted batch's state changes are skipped), and
the consumer goes back to the inputs' committed offsets. The compacted changelog keeps
the latest state per request; a tombstone (no value) removes one.
"""

from __future__ import annotations

from collections.abc import Collection

from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition

from streams.join.keys import key_from_changelog
from streams.join.store import StateStore
from streams.kafka.clients import ConsumerLike

__all__ = ["read_changelog", "rewind_inputs"]

READ_BATCH = 10_000


def read_changelog(
    reader: ConsumerLike, topic: str, owned: Collection[int], store: StateStore, header_size: int
) -> int:
    """Fill ``store`` (cleared first) from changelog partitions ``owned`` of ``topic``, up
    to their high watermarks as read now; returns the requests restored.

    ``reader`` is a consumer of its own (``enable.partition.eof``, ``read_committed``),
    assigned here; ``header_size``: the changelog values' wire header, not stored.
    """
    store.clear()
    ends = {}
    for partition in owned:
        low, high = reader.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        if high > low:
            ends[partition] = high
    if not ends:
        return 0
    reader.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
    remaining = set(ends)
    while remaining:
        for message in reader.consume(READ_BATCH, 1.0):
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    remaining.discard(message.partition())
                    continue
                raise KafkaException(error)
            key = key_from_changelog(message.key())
            value = message.value()
            if value is None:
                store.delete(key)
            else:
                store.put(key, value[header_size:])
            at: int = message.partition()
            if message.offset() + 1 >= ends[at]:
                remaining.discard(at)
    return len(store)


def rewind_inputs(consumer: ConsumerLike) -> None:
    """Seek every assigned input partition back to its committed offset (the start when
    the group has none)."""
    assigned = consumer.assignment()
    for tp in consumer.committed(assigned, timeout=30):
        consumer.seek(TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else 0))
