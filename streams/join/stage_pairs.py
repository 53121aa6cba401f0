"""Join stage 1 on Kafka: pair each request's records (:class:`SlotPairing`), exactly once.

Each batch is one Kafka transaction: its join events, the state changes that record them
(the compacted ``<prefix>.join.state`` changelog), its dead letters and its input offsets
commit together or not at all. The events go out as one JoinEventBatch record per
experiment (up to ``MAX_EVENTS_BYTES`` each), not a record per event: the broker and
stage 2 then handle a record per few hundred events. A worker killed mid-batch leaves an
open transaction that the broker aborts after ``transaction.timeout.ms``; the next owner
of the partitions restores the state from the changelog and re-reads the inputs from the
committed offsets, so nothing is lost or emitted twice (stage 2 reads only committed events).

Expiry runs only when every owned input partition is read to its end, so a request whose
other half is still unread (a backlog, a restart) is never declared missing.
"""

from __future__ import annotations

import logging
import operator
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from streams.codec import Codec, CodecError
from streams.hook.ratelimit import LibrdkafkaLog, RateLimitedLog
from streams.join.deadlines import Deadlines
from streams.join.experiments import ExperimentsFile
from streams.join.keys import (
    StoreKey,
    changelog_key,
    key_from_changelog,
    request_id_of,
    request_key,
)
from streams.join.metrics import JoinMetrics
from streams.join.slot_events import event_batch
from streams.join.slot_state import Slot
from streams.join.slots import EncodedJoinEvent, JoinOutcome, SlotPairing
from streams.join.store import StateStore, open_store
from streams.join.watchdog import Watchdog
from streams.records import (
    DeadLetter,
    GroundTruth,
    JoinEventBatch,
    JoinKind,
    JoinSlot,
    ModelInput,
    Prediction,
)
from streams.settings import Settings
from streams.topics import partition_of

__all__ = [
    "PairStage",
    "client_config",
    "dead_letter",
    "event_chunks",
    "group_config",
    "now_ms",
    "produce",
]

log = logging.getLogger(__name__)

BATCH_SIZE = 20_000
"""Records per transaction at most (by default)."""
SESSION_TIMEOUT_MS = 10_000
REBALANCE_TIMEOUT_MS = 30_000
"""Also librdkafka's max.poll.interval: a worker killed while its group rebalances is
dropped after this long (the classic protocol waits that long for every member)."""
STALL_LIMIT_S = 45.0
"""A transaction call blocked this long is stuck (see streams.join.watchdog)."""
COMMIT_TIMEOUT_S = 10.0
COMMIT_ATTEMPTS = 6
"""A commit that keeps failing for a minute is aborted and the batch redone."""
MAX_EVENTS_BYTES = 256 * 1024
"""Join events per JoinEventBatch record at most, in bytes (a larger event goes alone),
well inside the broker's default 1 MB record limit."""
TRANSACTION_TIMEOUT_MS = 10_000
"""How long a killed worker's open transaction holds back readers before the broker
aborts it."""
_REQUEST_RECORDS = (Prediction, GroundTruth, ModelInput)
_KIND_AND_REASON = operator.itemgetter(1, 2)
"""Of a queued join event."""
_UNREAD = Slot("", 0)
"""A request this batch has not touched yet (never a state: a sentinel)."""


def _stop_process(what: str) -> None:
    log.critical("join: %s is stuck; exiting for a restart (state is in Kafka)", what)
    logging.shutdown()
    os._exit(75)  # EX_TEMPFAIL; the blocked C call cannot be unwound


def dead_letter(message: Message, error_type: str, reason: str, metrics: JoinMetrics) -> DeadLetter:
    """The dead letter of a consumed record (counted and logged with its offset)."""
    metrics.dead_lettered.labels(error_type).inc()
    topic, partition, offset = message.topic() or "", message.partition(), message.offset()
    log.warning("join: dead-lettered %s[%s]@%s: %s", topic, partition, offset, reason)
    return DeadLetter(
        "join",
        topic,
        partition or 0,
        offset or 0,
        error_type,
        reason,
        now_ms(),
        message.key(),
        message.value(),
    )


def now_ms() -> int:
    return int(time.time() * 1000)


_LIBRDKAFKA_LOG = LibrdkafkaLog(RateLimitedLog(logging.getLogger("streams.join.librdkafka")))


def client_config(settings: Settings, **overrides: object) -> dict[str, object]:
    """librdkafka settings of every join client: its log lines (a broker outage makes many)
    go to ``streams.join.librdkafka``, at most one per kind a minute."""
    return settings.confluent_config(logger=_LIBRDKAFKA_LOG, **overrides)


def group_config(settings: Settings, group: str) -> dict[str, object]:
    """A consumer of one of the join's groups: manual offsets, committed reads only."""
    return client_config(
        settings,
        **{
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "partition.assignment.strategy": "range",  # co-partitioned topics stay together
            "session.timeout.ms": SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": SESSION_TIMEOUT_MS // 4,
            "max.poll.interval.ms": REBALANCE_TIMEOUT_MS,
            # "Read to the end" for expiry and the stage-2 rebuild: an end-of-partition
            # event, which (unlike offsets) also counts transaction markers as read.
            "enable.partition.eof": True,
            # Bound the prefetch (librdkafka's default is up to 64 MB per consumer).
            "queued.max.messages.kbytes": 16_384,
        },
    )


def event_chunks(values: list[bytes]) -> Iterator[list[bytes]]:
    """``values`` in order, in lists of at most MAX_EVENTS_BYTES (a larger value alone):
    the events of one JoinEventBatch record each.

    Examples
    --------
    >>> [len(c) for c in event_chunks([bytes(100_000)] * 5 + [bytes(300_000)])]
    [2, 2, 1, 1]
    """
    chunk: list[bytes] = []
    size = 0
    for value in values:
        if chunk and size + len(value) > MAX_EVENTS_BYTES:
            yield chunk
            chunk, size = [], 0
        chunk.append(value)
        size += len(value)
    if chunk:
        yield chunk


def produce(
    producer: Producer, topic: str, key: bytes, value: bytes | None, partition: int
) -> None:
    """Produce one record, first letting deliveries drain if the local queue is full."""
    try:
        producer.produce(topic, value, key, partition)
    except BufferError:
        producer.poll(0.5)
        producer.produce(topic, value, key, partition)


class PairStage:
    """Stage 1 of one worker: the ``<app_id>-<prefix>`` group over the per-request topics.

    Parameters
    ----------
    settings
        Broker, topic prefix and partition count (must match the topics).
    experiments
        The parsed experiments file.
    group
        The consumer group (and transactional id prefix).
    metrics
        Prometheus metrics to update.
    data_dir
        Where ``rocksdb://`` state lives.
    batch_size
        Records per transaction at most.
    watchdog
        Acts on a transaction call that never returns (by default: exits with status 75,
        for a supervisor to restart the worker; ``shadow-eval join`` restarts in place).
    """

    def __init__(
        self,
        settings: Settings,
        experiments: ExperimentsFile,
        group: str,
        metrics: JoinMetrics,
        data_dir: Path,
        batch_size: int = BATCH_SIZE,
        watchdog: Watchdog | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size {batch_size}: must be at least 1")
        self.batch_size = batch_size
        self.watchdog = watchdog or Watchdog(STALL_LIMIT_S, _stop_process)
        self.settings = settings
        self.topics = settings.topics
        self.partitions = settings.partitions
        self.codec = Codec()
        self.pairing = SlotPairing.for_codec(experiments, self.codec)
        self.metrics = metrics
        self.group = group
        self.store: StateStore = open_store(experiments.join.store, data_dir)
        self.sources = [
            self.topics.live_predictions,
            self.topics.shadow_predictions,
            self.topics.ground_truth,
        ]
        if experiments.needs_inputs:  # downstream decision / KPI functions read the inputs
            self.sources.append(self.topics.inputs)
        self.consumer = Consumer(group_config(settings, group))
        self.producer = Producer(
            client_config(
                settings,
                **{
                    "transactional.id": f"{group}-{uuid.uuid4().hex[:12]}",
                    "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
                    "linger.ms": 5,
                    "batch.num.messages": 10_000,
                    "queue.buffering.max.messages": 1_000_000,
                },
            )
        )
        self.processed = 0
        self._slot_header = self.codec.header_of(JoinSlot)
        self._batch_header = self.codec.header_of(JoinEventBatch)
        self._outgoing: dict[str, list[bytes]] = {}
        """This transaction's join events so far, by experiment."""
        self._owned: set[int] = set()
        self._at_end: set[tuple[str, int]] = set()
        self._event_partitions: dict[str, int] = {}
        self._min_ttl_ms = min(self.pairing.pair_ttl_ms, self.pairing.label_ttl_ms)
        self._deadlines: Deadlines[StoreKey] = Deadlines()

    def start(self) -> None:
        self.producer.init_transactions(30)
        self.consumer.subscribe(self.sources, on_assign=self._on_assign, on_revoke=self._on_revoke)

    def poll(self, timeout: float) -> int:
        """Process one batch (waiting up to ``timeout`` s for it); returns its size."""
        messages = self.consumer.consume(self.batch_size, timeout)
        if messages:
            self.process(messages)
        return len(messages)

    def close(self) -> None:
        try:
            self.consumer.close()
        except KafkaException as exc:
            log.warning("join: closing the stage-1 consumer: %s", exc)
        self.watchdog.close()
        self.store.close()

    def status(self) -> str:
        return (
            f"stage 1: {self.processed} records, {len(self.store)} requests pending, "
            f"partitions {sorted(self._owned)}"
        )

    def process(self, messages: list[Message]) -> None:
        """One transaction: the batch's events, state changes, dead letters and offsets."""
        decode, unpack, get = self.codec.decode, Slot.unpack, self.store.get
        pairing, deadlines, ttl = self.pairing, self._deadlines, self._min_ttl_ms
        at_end = self._at_end
        # Each request's state stays a Slot for the whole batch and is packed once.
        touched: dict[StoreKey, Slot | None] = {}
        dirty: dict[StoreKey, int] = {}  # key -> its partition (of the changelog too)
        offsets: dict[tuple[str, int], int] = {}
        topics: Counter[str] = Counter()
        outcomes: Counter[JoinOutcome] = Counter()
        accepted = 0
        now = now_ms()
        self._outgoing = {}
        pairing.take_events()  # (what a batch that failed midway left queued)
        self.producer.begin_transaction()
        for message in messages:
            # (consumed messages always carry these; librdkafka types them optional)
            topic: str = message.topic()  # type: ignore[assignment]
            partition: int = message.partition()  # type: ignore[assignment]
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    at_end.add((topic, partition))
                else:
                    log.warning("join: consumer error: %s", error)
                continue
            source = (topic, partition)
            at_end.discard(source)
            offsets[source] = message.offset() + 1  # type: ignore[operator]
            topics[topic] += 1
            value = message.value()
            try:
                record = decode(value)
            except CodecError as exc:
                self._dead_letter(message, "undecodable", exc.reason)
                continue
            record_type = type(record)
            if record_type not in _REQUEST_RECORDS:
                self._dead_letter(
                    message,
                    "wrong_schema",
                    f"expected a Prediction, GroundTruth or ModelInput, got {record_type.__name__}",
                )
                continue
            key = request_key(record.request_id)  # type: ignore[union-attr]
            slot = touched.get(key, _UNREAD)
            if slot is _UNREAD:  # not yet in this batch: from the store
                packed = get(key)
                slot = None if packed is None else unpack(packed)
            if record_type is Prediction:
                applied = pairing.add_prediction(slot, record, value, now)  # type: ignore[arg-type]
            elif record_type is GroundTruth:
                applied = pairing.add_label(slot, record, now)  # type: ignore[arg-type]
            else:
                applied = pairing.add_input(slot, record, value, now)  # type: ignore[arg-type]
            if isinstance(applied, Slot):
                accepted += 1
                if slot is None:  # a new request: when to look again
                    deadlines.add(key, applied.first_seen_ms + ttl)
                touched[key] = applied
                dirty[key] = partition
            else:
                outcomes[applied] += 1
                touched[key] = slot
        emitted: Counter[tuple[JoinKind, str | None]] = Counter()
        self._send(pairing.take_events(), emitted)
        self._produce_events()
        self._write_states(touched, dirty)
        self._commit(offsets)
        self.processed += len(messages)
        self.metrics.count(self.metrics.events_in, topics)
        self._count_emitted(emitted)
        if accepted:
            outcomes[JoinOutcome.ACCEPTED] = accepted
        self.metrics.count(self.metrics.outcomes, {o.value: n for o, n in outcomes.items()})

    def _load(self, key: StoreKey, touched: dict[StoreKey, Slot | None]) -> Slot | None:
        """A request's state: as this batch left it, else from the store."""
        if key in touched:
            return touched[key]
        packed = self.store.get(key)
        return None if packed is None else Slot.unpack(packed)

    def _send(
        self, events: Sequence[EncodedJoinEvent], emitted: Counter[tuple[JoinKind, str | None]]
    ) -> None:
        """Queue join events for :meth:`_produce_events` and tally them."""
        outgoing = self._outgoing
        for experiment, _kind, _reason, value in events:
            queued = outgoing.get(experiment)
            if queued is None:
                outgoing[experiment] = [value]
            else:
                queued.append(value)
        emitted.update(map(_KIND_AND_REASON, events))

    def _produce_events(self) -> None:
        """Produce the queued join events in the open transaction: JoinEventBatch records
        of up to MAX_EVENTS_BYTES, keyed and partitioned by experiment."""
        topic, header = self.topics.join_events, self._batch_header
        for experiment, values in self._outgoing.items():
            key, partition = experiment.encode(), self._event_partition(experiment)
            for chunk in event_chunks(values):
                self._produce(topic, key, event_batch(header, chunk), partition)
        self._outgoing = {}

    def _count_emitted(self, emitted: Counter[tuple[JoinKind, str | None]]) -> None:
        self.metrics.count(
            self.metrics.join_events,
            {(kind.value, reason or ""): n for (kind, reason), n in emitted.items()},
        )

    def _event_partition(self, experiment: str) -> int:
        partition = self._event_partitions.get(experiment)
        if partition is None:
            partition = partition_of(experiment.encode(), self.partitions)
            self._event_partitions[experiment] = partition
        return partition

    def _write_states(
        self, touched: dict[StoreKey, Slot | None], dirty: dict[StoreKey, int]
    ) -> None:
        """Apply a batch's state changes to the store and its changelog (same transaction).

        A request's changelog partition is its input partition (murmur2 of the request
        id, as every producer of the per-request topics must use): the owner of input
        partition p restores changelog partition p.
        """
        store, header, topic = self.store, self._slot_header, self.topics.join_state
        for key, partition in dirty.items():
            slot = touched[key]
            if slot is None:
                store.delete(key)
                self._produce(topic, changelog_key(key), None, partition)
            else:
                packed = slot.pack()
                store.put(key, packed)
                self._produce(topic, changelog_key(key), header + packed, partition)

    def _produce(self, topic: str, key: bytes, value: bytes | None, partition: int) -> None:
        produce(self.producer, topic, key, value, partition)

    def _commit(self, offsets: dict[tuple[str, int], int]) -> None:
        """Commit the open transaction (with ``offsets``), or undo the batch.

        An abortable failure (a broker restart, a fenced epoch after a rebalance) aborts
        the transaction and rewinds to the last commit: the store is restored from the
        changelog and the inputs are re-read, so the batch is redone, not lost. A fatal
        one (another worker took over this transactional id) stops the worker.
        """
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            try:
                with self.watchdog.guard("committing a transaction"):
                    self._commit_once(offsets)
                return
            except KafkaException as exc:
                error = exc.args[0]
                if error.fatal():
                    log.error("join: transaction failed, stopping: %s", error)
                    raise
                if error.retriable() and not error.txn_requires_abort():
                    log.warning("join: committing (attempt %d): %s", attempt, error)
                    continue
                log.warning("join: transaction aborted (%s); redoing it", error)
                break
        with self.watchdog.guard("aborting a transaction"):
            self.producer.abort_transaction(COMMIT_TIMEOUT_S)
        self._rewind()

    def _commit_once(self, offsets: dict[tuple[str, int], int]) -> None:
        if offsets:
            self.producer.send_offsets_to_transaction(
                [TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                self.consumer.consumer_group_metadata(),
                COMMIT_TIMEOUT_S,
            )
        self.producer.commit_transaction(COMMIT_TIMEOUT_S)

    def _rewind(self) -> None:
        """Back to the last committed transaction: its state and its input offsets."""
        assigned = self.consumer.assignment()
        self._restore(self._owned)
        self._at_end = set()
        for tp in self.consumer.committed(assigned, timeout=30):
            self.consumer.seek(
                TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else 0)
            )

    def _dead_letter(self, message: Message, error_type: str, reason: str) -> None:
        letter = dead_letter(message, error_type, reason, self.metrics)
        key = message.key() or b""
        partition = partition_of(key, self.partitions)
        self._produce(self.topics.dlq, key, self.codec.encode(letter), partition)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Between batches (callbacks run inside consume): nothing is in flight.
        self.store.clear()
        self._deadlines.clear()
        self._owned = set()
        self._at_end = set()

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        owned = {tp.partition for tp in partitions}
        started = time.monotonic()
        restored = self._restore(owned)
        self._owned = owned
        log.info(
            "join: stage 1 owns partitions %s; restored %d requests in %.1fs",
            sorted(owned),
            restored,
            time.monotonic() - started,
        )

    def _restore(self, owned: set[int]) -> int:
        """Read the changelog partitions of ``owned`` to their (committed) end, and file
        every request restored for an expiry check."""
        restored = self._read_changelog(owned)
        deadlines, ttl = self._deadlines, self._min_ttl_ms
        for key, packed in self.store.items():
            deadlines.add(key, Slot.first_seen(packed) + ttl)
        return restored

    def _read_changelog(self, owned: set[int]) -> int:
        self.store.clear()
        self._deadlines.clear()
        if not owned:
            return 0
        reader = Consumer(
            client_config(
                self.settings,
                **{
                    "group.id": f"{self.group}-restore",
                    "enable.auto.commit": False,
                    "isolation.level": "read_committed",
                    "enable.partition.eof": True,
                },
            )
        )
        try:
            topic = self.topics.join_state
            ends = {}
            for partition in owned:
                low, high = reader.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=10
                )
                if high > low:
                    ends[partition] = high
            if not ends:
                return 0
            reader.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
            header_size = len(self._slot_header)
            store = self.store
            remaining = set(ends)
            while remaining:
                for message in reader.consume(10_000, 1.0):
                    error = message.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            remaining.discard(message.partition())
                            continue
                        raise KafkaException(error)
                    key = key_from_changelog(message.key())  # type: ignore[arg-type]
                    value = message.value()
                    if value is None:
                        store.delete(key)
                    else:
                        store.put(key, value[header_size:])
                    at: int = message.partition()  # type: ignore[assignment]
                    if message.offset() + 1 >= ends[at]:  # type: ignore[operator]
                        remaining.discard(at)
            return len(store)
        finally:
            reader.close()

    # ------------------------------------------------------------------ expiry
    def expire(self) -> None:
        if not self._owned or not self._caught_up():
            # Behind on the topics (a backlog, a restart): the other half of a pending
            # request may still be unread, so nothing can be declared missing yet.
            return
        now = now_ms()
        touched: dict[StoreKey, Slot | None] = {}
        dirty: dict[StoreKey, int] = {}
        emitted: Counter[tuple[JoinKind, str | None]] = Counter()
        self._outgoing = {}
        self.pairing.take_events()  # (what a batch that failed midway left queued)
        self.producer.begin_transaction()
        for key in self._deadlines.pop_due(now):
            slot = self._load(key, touched)
            if slot is None:
                continue  # done with already
            request_id = request_id_of(key)
            kept = self.pairing.expire(request_id, slot, now)
            if isinstance(kept, JoinOutcome):  # nothing due: unchanged
                kept = slot
            else:
                touched[key] = kept
                dirty[key] = partition_of(request_id.encode(), self.partitions)
            if kept is not None:
                self._deadlines.add(key, self._next_deadline(kept, now))
        self._send(self.pairing.take_events(), emitted)
        self._produce_events()
        self._write_states(touched, dirty)
        self._commit({})
        self._count_emitted(emitted)
        self.metrics.pending.set(len(self.store))

    def _next_deadline(self, slot: Slot, now: int) -> int:
        """The next time a request still held needs a look: its pair TTL, else its label
        TTL (a request past its label TTL is never still held)."""
        pair_due = slot.first_seen_ms + self.pairing.pair_ttl_ms
        label_due = slot.first_seen_ms + self.pairing.label_ttl_ms
        return pair_due if now < pair_due < label_due else label_due

    def _caught_up(self) -> bool:
        """Whether every owned input partition was read to its end (librdkafka reports
        reaching it), and the lag gauges from the last fetched high watermarks."""
        assigned = self.consumer.assignment()
        if not assigned:
            return False
        lags: Counter[str] = Counter()
        for tp in self.consumer.position(assigned):
            _low, high = self.consumer.get_watermark_offsets(tp, cached=True) or (0, 0)
            if tp.offset >= 0 and high >= 0:
                lags[tp.topic] += max(high - tp.offset, 0)
        for topic in self.sources:
            self.metrics.lag.labels(topic).set(lags.get(topic, 0))
        return all((tp.topic, tp.partition) in self._at_end for tp in assigned)
