"""Join stage 1's state restore: each owned partition's store from the
``<prefix>.join.state`` changelog.

After an assignment, and after an aborted transaction (a rewind), stage 1 brings the
store of each input partition it owns up to its changelog partition's committed end
(``read_committed``: an aborted batch's state changes are skipped), and the consumer goes
back to the inputs' committed offsets. A persistent store (``rocksdb://``) replays only
the changelog after the offset it recorded (:func:`resume_offset`); it is rebuilt from
the start instead when it cannot be trusted: it recorded nothing, or another changelog
topic (a topic deleted and created again has a new id), or an offset past the end (or
before the start) of the partition, or another state schema, or deadlines filed under
other TTLs, or it is older than the changelog keeps tombstones (``delete.retention.ms``:
a request another owner finished meanwhile could be gone from the changelog but not from
the store). A partition that moved to another worker and back replays what that worker
wrote meanwhile, as Kafka Streams' stores do. A ``memory://`` store is always rebuilt.

The compacted changelog keeps the latest state per request; a tombstone (no value)
removes one. A value of an older state version stage 1 can read (JoinSlot version 1,
whose stored predictions lack Prediction version 2's cost fields) is rewritten as the
current version. A value whose wire header (magic byte and schema id) is otherwise not the
state's own (another writer's record, a state of an incompatible version) is never
unpacked: its request is dropped from the store as by a tombstone, and the values skipped
are counted in one warning.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    KafkaError,
    KafkaException,
    TopicCollection,
    TopicPartition,
)

from streams.join.keys import StoreKey, key_from_changelog
from streams.join.slot_state import Slot
from streams.join.store import PartitionStore, Persisted
from streams.join.stores import Stores
from streams.kafka.assignment import watermarks
from streams.kafka.clients import ConsumerLike
from streams.kafka.config import reader_config
from streams.settings import Settings

__all__ = [
    "OwnedStores",
    "Replay",
    "read_topic_id",
    "restore",
    "restore_config",
    "resume_offset",
    "rewind_inputs",
]

Upgrades = Mapping[bytes, Callable[[bytes], bytes | None]]
"""Header of an older state version -> its body rewritten as the current version."""
READ_BATCH = 10_000
MARK_EVERY_S = 5.0
"""How often a persistent store records the changelog offset it reflects (a restart
replays the changelog after it)."""
TOMBSTONE_RETENTION_MS = 86_400_000
"""Kafka's default ``delete.retention.ms``, which the join's changelog keeps: a store
older than this is rebuilt (tombstones written meanwhile may be compacted away)."""
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Replay:
    """How one partition's store was brought up to date."""

    start: int
    """The first changelog offset read."""
    end: int
    """The changelog end read to."""
    rebuilt: str | None
    """Why the store was rebuilt from the start; None: it replayed only the tail."""
    records: int = 0
    """Changelog records read."""


class OwnedStores:
    """The stores of the input partitions stage 1 owns: opened on assignment, brought
    up to the changelog (:func:`restore`), their offsets recorded, closed on revocation.

    Parameters
    ----------
    stores
        Opens a partition's store (the ``[join] store`` URL).
    topic
        The changelog topic.
    header
        The changelog values' wire header (magic byte and the state's schema id).
    first_due
        A request's first deadline from its first-seen time.
    ttls
        The pair and label TTLs (a store whose deadlines were filed under others is
        rebuilt).
    reader
        Makes the restore's own consumer (``read_committed``, ``enable.partition.eof``).
    admin
        An admin client (reads the changelog's topic id).
    upgrades
        The headers of older state versions this one reads, each with the function that
        rewrites such a body as the current version (``None``: it cannot; not restored).
    """

    def __init__(
        self,
        stores: Stores,
        topic: str,
        header: bytes,
        first_due: Callable[[int], int],
        ttls: str,
        reader: Callable[[], ConsumerLike],
        admin: Any,
        upgrades: Upgrades | None = None,
    ) -> None:
        self.stores = stores
        self.upgrades = upgrades or {}
        self.topic = topic
        self.header = header
        self.first_due = first_due
        self.ttls = ttls
        self._reader = reader
        self._admin = admin
        self.parts: dict[int, PartitionStore] = {}
        """The store of each input partition owned (the same dict throughout)."""
        self.last_restore: dict[int, Replay] = {}
        """How each owned partition's store was last brought up to date."""
        self._topic_id: str | None = None
        self._next_mark = 0.0

    @property
    def pending(self) -> int:
        """Requests held, in every owned partition's store."""
        return sum(len(store) for store in self.parts.values())

    def restore(self, owned: set[int]) -> dict[int, Replay]:
        """Open the stores of ``owned`` not open yet and bring them all up to their
        changelog partitions: the tail after a persistent store's offset, or all of it."""
        for partition in owned - self.parts.keys():
            self.parts[partition] = self.stores.open(partition)
        if not owned:
            return {}
        self._topic_id = read_topic_id(self._admin, self.topic)
        reader = self._reader()
        try:
            stores = {p: self.parts[p] for p in sorted(owned)}
            replays = restore(reader, self.topic, stores, self.header, self._topic_id,
                              self.first_due, int(time.time() * 1000), self.ttls,
                              self.upgrades)  # fmt: skip
        finally:
            reader.close()
        self._next_mark = time.monotonic() + MARK_EVERY_S
        self.last_restore = replays
        return replays

    def mark(self, consumer: ConsumerLike, force: bool = False) -> None:
        """Record in each persistent store the changelog offset it reflects, every
        MARK_EVERY_S (or now: ``force``). Call between transactions only: every committed
        change is in the stores by then, and the changelog's end is past them all."""
        if not (self.stores.persistent and self.parts and self._topic_id is not None):
            return
        if not force and time.monotonic() < self._next_mark:
            return
        self._next_mark = time.monotonic() + MARK_EVERY_S
        written = int(time.time() * 1000)
        for partition, store in self.parts.items():
            where = TopicPartition(self.topic, partition)
            try:
                _low, high = consumer.get_watermark_offsets(where, timeout=5)
            except KafkaException as exc:
                log.warning("join: cannot read the end of %s[%d]: %s", self.topic, partition, exc)
                continue
            store.mark(Persisted(high, self._topic_id, self.header, written, self.ttls))

    def close(self) -> None:
        """Close every store (a persistent one stays on disk)."""
        for store in self.parts.values():
            store.close()
        self.parts.clear()


def restore_config(settings: Settings, group: str, logs: str) -> dict[str, Any]:
    """The restore's own consumer: committed records only, and the end of each partition
    reported."""
    return reader_config(
        settings,
        "join-restore",
        logs=logs,
        overrides={
            "group.id": f"{group}-restore",
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        },
    )


def resume_offset(
    persisted: Persisted | None, low: int, high: int, topic_id: str | None, header: bytes,
    now_ms: int, ttls: str = "",
) -> tuple[int | None, str]:  # fmt: skip
    """Where a store that recorded ``persisted`` resumes reading a changelog partition
    spanning ``[low, high)``; None (and why) when it must be rebuilt.

    Examples
    --------
    >>> seen = Persisted(offset=500, topic_id="id1", header=b"\\0\\0\\0\\0\\1", written_ms=0)
    >>> resume_offset(seen, 0, 800, "id1", b"\\0\\0\\0\\0\\1", now_ms=1_000)
    (500, 'replaying from offset 500')
    >>> resume_offset(seen, 0, 800, "id2", b"\\0\\0\\0\\0\\1", now_ms=1_000)[0] is None
    True
    """
    if persisted is None:
        return None, "no offset recorded"
    if topic_id is None or persisted.topic_id != topic_id:
        return None, "made from another changelog topic of that name (created again since)"
    if persisted.header != header:
        return None, "written under another state schema"
    if persisted.ttls != ttls:
        return None, "its deadlines were filed under other TTLs"
    if persisted.offset > high:
        return None, f"ahead of the changelog (offset {persisted.offset}, end {high})"
    if persisted.offset < low:
        return None, f"behind the changelog's start (offset {persisted.offset}, start {low})"
    if now_ms - persisted.written_ms > TOMBSTONE_RETENTION_MS:
        return None, "older than the changelog keeps tombstones"
    return persisted.offset, f"replaying from offset {persisted.offset}"


def restore(
    reader: ConsumerLike,
    topic: str,
    stores: Mapping[int, PartitionStore],
    header: bytes,
    topic_id: str | None,
    first_due: Callable[[int], int],
    now_ms: int,
    ttls: str = "",
    upgrades: Upgrades | None = None,
) -> dict[int, Replay]:
    """Bring each store (by changelog partition) up to the changelog's end as read now,
    file its new requests' deadlines, and record the offset reached.

    ``reader`` is a consumer of its own (``enable.partition.eof``, ``read_committed``),
    assigned here; ``header``: the changelog values' wire header (magic byte and the
    state's schema id), checked and not stored; ``first_due``: a request's first deadline
    from its first-seen time; ``upgrades``: older state versions read (see
    :class:`OwnedStores`).
    """
    replays: dict[int, Replay] = {}
    for partition, store in stores.items():
        low, high = watermarks(reader, TopicPartition(topic, partition))
        start, why = resume_offset(store.persisted(), low, high, topic_id, header, now_ms, ttls)
        if start is None:
            store.wipe()
            replays[partition] = Replay(low, high, why)
        else:
            replays[partition] = Replay(start, high, None)
    counts = _read(reader, topic, stores, header, replays, first_due, upgrades or {})
    for partition, store in stores.items():
        replay = replays[partition]
        replays[partition] = Replay(replay.start, replay.end, replay.rebuilt, counts[partition])
        if not store.persistent:
            _file_all(store, first_due)
        elif topic_id is not None:
            store.mark(Persisted(replay.end, topic_id, header, now_ms, ttls))
    return replays


def _read(
    reader: ConsumerLike,
    topic: str,
    stores: Mapping[int, PartitionStore],
    header: bytes,
    replays: Mapping[int, Replay],
    first_due: Callable[[int], int],
    upgrades: Upgrades,
) -> dict[int, int]:
    """Apply changelog partitions from each replay's start to its end to their stores,
    in writes of up to READ_BATCH records; returns the records read per partition."""
    counts = dict.fromkeys(stores, 0)
    remaining = {p for p, r in replays.items() if r.end > r.start}
    if not remaining:
        return counts
    reader.assign([TopicPartition(topic, p, replays[p].start) for p in remaining])
    size, foreign = len(header), 0
    pending: dict[int, dict[StoreKey, bytes | None]] = {p: {} for p in remaining}
    while remaining:
        for message in reader.consume(READ_BATCH, 1.0):
            at: int = message.partition()
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    remaining.discard(at)
                    continue
                raise KafkaException(error)
            value = message.value()
            changes = pending[at]
            upgrade = None if value is None else upgrades.get(value[:size])
            if upgrade is not None:  # an older state version: rewritten as the current one
                body = upgrade(value[size:])
                value = None if body is None else header + body
            if value is not None and value[:size] == header:
                changes[key_from_changelog(message.key())] = value[size:]
            else:
                foreign += value is not None
                changes[key_from_changelog(message.key())] = None
            counts[at] += 1
            if len(changes) >= READ_BATCH:
                _apply(stores[at], changes, first_due)
            if message.offset() + 1 >= replays[at].end:
                remaining.discard(at)
    for at, changes in pending.items():
        _apply(stores[at], changes, first_due)
    if foreign:
        log.warning("join: %d changelog values of %s were not a join state (schema id other "
                    "than %s): their requests were not restored", foreign, topic,
                    int.from_bytes(header[1:], "big"))  # fmt: skip
    return counts


def _apply(
    store: PartitionStore, changes: dict[StoreKey, bytes | None], first_due: Callable[[int], int]
) -> None:
    """One write of replayed states; a persistent store files each state's first
    deadline as it goes (a request filed twice under one deadline is one entry)."""
    filed = (
        [(key, first_due(Slot.first_seen(v))) for key, v in changes.items() if v is not None]
        if store.persistent
        else ()
    )
    store.write(changes, filed)
    changes.clear()


def _file_all(store: PartitionStore, first_due: Callable[[int], int]) -> None:
    """A rebuilt in-memory store's deadlines, each request once."""
    filed = [(key, first_due(Slot.first_seen(packed))) for key, packed in store.items()]
    store.write({}, filed)


def read_topic_id(admin: Any, topic: str) -> str | None:
    """The Kafka id of ``topic`` (None, logged, when it cannot be read)."""
    try:
        described = admin.describe_topics(TopicCollection([topic]), request_timeout=10)
        return str(described[topic].result(timeout=10).topic_id)
    except (KafkaException, TimeoutError) as exc:
        log.warning("join: cannot read the id of %s: %s", topic, exc)
        return None


def rewind_inputs(consumer: ConsumerLike) -> None:
    """Seek every assigned input partition back to its committed offset (the start when
    the group has none: the log start, so a retention that moved it is no loss)."""
    assigned = consumer.assignment()
    for tp in consumer.committed(assigned, timeout=30):
        offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
        try:
            consumer.seek(TopicPartition(tp.topic, tp.partition, offset))
        except KafkaException as exc:  # stopped by an offset error: its event restarts it
            log.warning("join: cannot rewind %s[%d]: %s", tp.topic, tp.partition, exc)
