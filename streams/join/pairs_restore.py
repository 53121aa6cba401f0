"""Join stage 1's state restore: the local store from the ``<prefix>.join.state`` changelog.

After an assignment, and after an aborted transaction (a rewind), stage 1 reads the
changelog partitions of the input partitions it owns from the beginning to their
committed end (``read_committed``: an aborted batch's state changes are skipped), and
the consumer goes back to the inputs' committed offsets. The compacted changelog keeps
the latest state per request; a tombstone (no value) removes one. A value whose wire
header (magic byte and schema id) is not the state's own (another writer's record, a
state of an incompatible version) is never unpacked: its request is dropped from the
store as by a tombstone, and the values skipped are counted in one warning.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping

from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition

from streams.join.keys import key_from_changelog
from streams.join.store import StateStore
from streams.kafka.clients import ConsumerLike

__all__ = ["read_changelog", "rewind_inputs"]

READ_BATCH = 10_000
log = logging.getLogger(__name__)


def read_changelog(
    reader: ConsumerLike,
    topic: str,
    owned: Collection[int],
    store: StateStore,
    header: bytes,
    upgrades: Mapping[bytes, Callable[[bytes], bytes | None]] | None = None,
) -> int:
    """Fill ``store`` (cleared first) from changelog partitions ``owned`` of ``topic``, up
    to their high watermarks as read now; returns the requests restored.

    ``reader`` is a consumer of its own (``enable.partition.eof``, ``read_committed``),
    assigned here; ``header``: the changelog values' wire header (magic byte and the
    state's schema id), checked and not stored. ``upgrades``: the headers of older state
    versions this one can read, with the function that rewrites such a body as the
    current version (``None`` when it cannot: not restored).
    """
    store.clear()
    upgrades = upgrades or {}
    ends = {}
    for partition in owned:
        low, high = reader.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        if high > low:
            ends[partition] = high
    if not ends:
        return 0
    reader.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
    remaining, size, foreign = set(ends), len(header), 0
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
            upgrade = None if value is None else upgrades.get(value[:size])
            if upgrade is not None:
                value = upgrade(value[size:])
                value = None if value is None else header + value
            if value is not None and value[:size] == header:
                store.put(key, value[size:])
            else:
                foreign += value is not None
                store.delete(key)
            at: int = message.partition()
            if message.offset() + 1 >= ends[at]:
                remaining.discard(at)
    if foreign:
        log.warning("join: %d changelog values of %s were not a join state (schema id other "
                    "than %s): their requests were not restored", foreign, topic,
                    int.from_bytes(header[1:], "big"))  # fmt: skip
    return len(store)


def rewind_inputs(consumer: ConsumerLike) -> None:
    """Seek every assigned input partition back to its committed offset (the start when
    the group has none)."""
    assigned = consumer.assignment()
    for tp in consumer.committed(assigned, timeout=30):
        consumer.seek(TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else 0))
