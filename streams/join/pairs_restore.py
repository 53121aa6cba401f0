"""Join stage 1's state restore: each owned partition's store from the
``<prefix>.join.state`` changelog.

After an assignment, and after an aborted transaction (a rewind), stage 1 brings the
store of each input partition it owns up to its changelog partition's committed end
(``read_committed``: an aborted batch's state changes are skipped), and the consumer goes
back to the inputs' committed offsets. After an assignment it does so in steps
(:meth:`OwnedStores.begin`, :meth:`OwnedStores.step`) between polls of its group, the new
inputs paused meanwhile, so that a long restore never holds the group's callback past
``max.poll.interval.ms``. A persistent store (``rocksdb://``) replays only
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
    "Restore",
    "read_topic_id",
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
    up to the changelog (:class:`Restore`), their offsets recorded, closed on revocation.

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
        self._running: Restore | None = None
        self._started = 0.0

    @property
    def pending(self) -> int:
        """Requests held, in every owned partition's store."""
        return sum(len(store) for store in self.parts.values())

    def restore(self, owned: set[int]) -> dict[int, Replay]:
        """Open the stores of ``owned`` not open yet and bring them all up to their
        changelog partitions: the tail after a persistent store's offset, or all of it."""
        self.begin(owned)
        while self.restoring and not self.step(float("inf")):
            pass
        return self.last_restore

    @property
    def restoring(self) -> bool:
        """A restore begun and not finished: the stores are not up to date."""
        return self._running is not None

    def begin(self, owned: set[int]) -> None:
        """Start bringing the stores of ``owned`` up to date (:meth:`step` goes on)."""
        self._abandon()
        self._started = time.monotonic()
        for partition in owned - self.parts.keys():
            self.parts[partition] = self.stores.open(partition)
        self.last_restore = {}
        if not owned:
            self._log_restored()
            return
        self._topic_id = read_topic_id(self._admin, self.topic)
        reader = self._reader()
        try:
            stores = {p: self.parts[p] for p in sorted(owned)}
            self._running = Restore(reader, self.topic, stores, self.header, self._topic_id,
                                    self.first_due, int(time.time() * 1000), self.ttls,
                                    self.upgrades)  # fmt: skip
        except BaseException:
            reader.close()
            raise

    def step(self, seconds: float) -> bool:
        """Go on with the restore begun for about ``seconds``; True once it is done (the
        stores up to date, :attr:`last_restore` set)."""
        running = self._running
        if running is None:
            return True
        try:
            if not running.step(seconds):
                return False
        except BaseException:
            self._abandon()
            raise
        self._abandon()
        self._next_mark = time.monotonic() + MARK_EVERY_S
        self.last_restore = running.replays
        self._log_restored()
        return True

    def _log_restored(self) -> None:
        replays = self.last_restore
        rebuilt = {p: r.rebuilt for p, r in replays.items() if r.rebuilt is not None}
        log.info("join: stage 1 owns partitions %s; restored %d requests in %.1fs, replaying "
                 "%d changelog records (rebuilt: %s)", sorted(self.parts), self.pending,
                 time.monotonic() - self._started, sum(r.records for r in replays.values()),
                 rebuilt or "none")  # fmt: skip

    def _abandon(self) -> None:
        if self._running is not None:
            self._running.reader.close()
            self._running = None

    def mark(self, consumer: ConsumerLike, force: bool = False) -> None:
        """Record in each persistent store the changelog offset it reflects, every
        MARK_EVERY_S (or now: ``force``). Call between transactions only: every committed
        change is in the stores by then, and the changelog's end is past them all."""
        if not (self.stores.persistent and self.parts and self._topic_id is not None):
            return
        if self._running is not None:
            return  # the stores are behind the changelog's end until the restore is done
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
        """Close every store (a persistent one stays on disk), abandoning a restore."""
        self._abandon()
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


class Restore:
    """One restore of stores from their changelog partitions, read in steps so that the
    caller may keep serving its consumer group in between (its inputs paused).

    ``reader`` is a consumer of its own (``enable.partition.eof``, ``read_committed``),
    assigned here; ``header``: the changelog values' wire header (magic byte and the
    state's schema id), checked and not stored; ``first_due``: a request's first deadline
    from its first-seen time; ``upgrades``: older state versions read (see
    :class:`OwnedStores`). A restore abandoned midway leaves each store with the offset
    it recorded before (replaying is idempotent: the next restore reads from there).
    """

    def __init__(
        self,
        reader: ConsumerLike,
        topic: str,
        stores: Mapping[int, PartitionStore],
        header: bytes,
        topic_id: str | None,
        first_due: Callable[[int], int],
        now_ms: int,
        ttls: str = "",
        upgrades: Upgrades | None = None,
    ) -> None:
        self.reader, self.topic, self.stores, self.header = reader, topic, stores, header
        self.topic_id, self.first_due, self.now_ms, self.ttls = topic_id, first_due, now_ms, ttls
        self.upgrades = upgrades or {}
        self.replays: dict[int, Replay] = {}
        """How each store is brought up to date (its records counted once done)."""
        for partition, store in stores.items():
            low, high = watermarks(reader, TopicPartition(topic, partition))
            start, why = resume_offset(store.persisted(), low, high, topic_id, header, now_ms, ttls)
            if start is None:
                store.wipe()
                self.replays[partition] = Replay(low, high, why)
            else:
                self.replays[partition] = Replay(start, high, None)
        self.counts = dict.fromkeys(stores, 0)
        self.foreign = 0
        self.done = False
        self.remaining = {p for p, r in self.replays.items() if r.end > r.start}
        self.pending: dict[int, dict[StoreKey, bytes | None]] = {p: {} for p in self.remaining}
        if self.remaining:
            reader.assign([TopicPartition(topic, p, self.replays[p].start) for p in self.remaining])

    def step(self, seconds: float) -> bool:
        """Read for about ``seconds`` (at least one batch); True once every store is up to
        its changelog's end (then its deadlines filed and its offset recorded)."""
        if self.done:
            return True
        deadline = time.monotonic() + seconds
        while self.remaining:
            self._read_batch()
            if self.remaining and time.monotonic() >= deadline:
                return False
        self._finish()
        self.done = True
        return True

    def _read_batch(self) -> None:
        """Apply up to READ_BATCH changelog records to their stores, in writes of up to
        READ_BATCH records each."""
        size, stores, replays = len(self.header), self.stores, self.replays
        remaining = self.remaining
        for message in self.reader.consume(READ_BATCH, 1.0):
            at: int = message.partition()
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    remaining.discard(at)
                    continue
                raise KafkaException(error)
            value = message.value()
            changes = self.pending[at]
            upgrade = None if value is None else self.upgrades.get(value[:size])
            if upgrade is not None:  # an older state version: rewritten as the current one
                body = upgrade(value[size:])
                value = None if body is None else self.header + body
            if value is not None and value[:size] == self.header:
                changes[key_from_changelog(message.key())] = value[size:]
            else:
                self.foreign += value is not None
                changes[key_from_changelog(message.key())] = None
            self.counts[at] += 1
            if len(changes) >= READ_BATCH:
                _apply(stores[at], changes, self.first_due)
            if message.offset() + 1 >= replays[at].end:
                remaining.discard(at)

    def _finish(self) -> None:
        for at, changes in self.pending.items():
            _apply(self.stores[at], changes, self.first_due)
        if self.foreign:
            log.warning("join: %d changelog values of %s were not a join state (schema id "
                        "other than %s): their requests were not restored", self.foreign,
                        self.topic, int.from_bytes(self.header[1:], "big"))  # fmt: skip
        for partition, store in self.stores.items():
            replay = self.replays[partition]
            self.replays[partition] = Replay(
                replay.start, replay.end, replay.rebuilt, self.counts[partition]
            )
            if not store.persistent:
                _file_all(store, self.first_due)
            elif self.topic_id is not None:
                store.mark(
                    Persisted(replay.end, self.topic_id, self.header, self.now_ms, self.ttls)
                )


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
