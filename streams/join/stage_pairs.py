"""Join stage 1 on Kafka: pair each request's records (:class:`SlotPairing`), exactly once.

Each batch is one Kafka transaction (:class:`~streams.kafka.TransactionalBatch`): its
join events, the state changes that record them (the compacted ``<prefix>.join.state``
changelog), its dead letters and its input offsets commit together or not at all. The
events go out as one JoinEventBatch record per experiment (up to ``MAX_EVENTS_BYTES``
each), not a record per event: the broker and stage 2 then handle a record per few
hundred events. A worker killed mid-batch leaves an open transaction that the broker
aborts after ``transaction.timeout.ms``; the next owner of the partitions restores the
state from the changelog and re-reads the inputs from the committed offsets, so nothing
is lost or emitted twice (stage 2 reads only committed events).

Expiry runs only when every owned input partition is read to its end, so a request whose
other half is still unread (a backlog, a restart) is never declared missing.

This module is the loop; the changelog restore is :mod:`streams.join.pairs_restore`, the
expiry clock :mod:`streams.join.pairs_expiry`, what a transaction writes (join events,
state changes) :mod:`streams.join.pairs_output`, the clients :mod:`streams.kafka`.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from streams.codec import Codec, CodecError, codec_for
from streams.join.experiments import ExperimentsFile
from streams.join.keys import StoreKey, request_key
from streams.join.metrics import JoinMetrics
from streams.join.pairs_expiry import ExpiryClock, caught_up
from streams.join.pairs_output import PairOutput
from streams.join.pairs_restore import OwnedStores, restore_config, rewind_inputs
from streams.join.partition_watch import changed_partitions
from streams.join.slot_events import MAX_EVENTS_BYTES, event_chunks
from streams.join.slot_state import Slot
from streams.join.slots import JoinOutcome, SlotPairing
from streams.join.stores import Stores, store_directory
from streams.kafka import CONFLUENT, KafkaClients, ProducerWrapper, TransactionalBatch, Watchdog
from streams.kafka.assignment import leave_group
from streams.kafka.clients import MessageLike
from streams.kafka.config import (
    admin_config,
    group_config,
    transactional_config,
)
from streams.kafka.deadletter import dead_letter, send_dead_letter
from streams.kafka.limits import TOO_LARGE, record_limit
from streams.kafka.offset_loss import OffsetLoss
from streams.records import GroundTruth, JoinEventBatch, JoinKind, JoinSlot, ModelInput, Prediction
from streams.settings import Settings
from streams.topics import TopicError, co_partitioned

__all__ = ["LIBRDKAFKA_LOGS", "MAX_EVENTS_BYTES", "PairStage", "event_chunks", "now_ms"]

log = logging.getLogger(__name__)

LIBRDKAFKA_LOGS = "streams.join.librdkafka"
"""Where the join's clients log (a broker outage makes many lines: rate-limited)."""
BATCH_SIZE = 20_000
"""Records per transaction at most (by default)."""
TRANSACTION_TIMEOUT_MS = 10_000
"""How long a killed worker's open transaction holds back readers before the broker
aborts it."""
EXPIRE_BUDGET_S = 2.0
"""An expiry call settles due requests in passes of ``batch_size`` per partition, one
transaction each, for this long at most (the rest waits for the next call)."""
RESTORE_STEP_S = 2.0
"""How long one poll goes on with a restore before it serves the group again (well
under max.poll.interval.ms)."""
STATE_PARTS = 8
"""A request's state (live, candidates, label) holds up to this many inputs' values."""
_REQUEST_RECORDS = (Prediction, GroundTruth, ModelInput)
_UNREAD = Slot("", 0)
"""A request this batch has not touched yet (never a state: a sentinel)."""


def _stop_process(what: str) -> None:
    log.critical("join: %s is stuck; exiting for a restart (state is in Kafka)", what)
    logging.shutdown()
    os._exit(75)  # EX_TEMPFAIL; the blocked C call cannot be unwound


def now_ms() -> int:
    return int(time.time() * 1000)


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
        Where ``rocksdb://`` state lives (``pairs/<group>/partition-<n>`` under it).
    batch_size
        Records per transaction at most.
    watchdog
        Acts on a transaction call that never returns (by default: exits with status 75,
        for a supervisor to restart the worker; ``shadow-eval join`` restarts in place).
    clients
        Where its Kafka clients come from (an in-process fake in unit tests).
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
        *,
        clients: KafkaClients = CONFLUENT,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size {batch_size}: must be at least 1")
        self.batch_size = batch_size
        self.watchdog = watchdog or Watchdog(experiments.join.stall_limit_s, _stop_process)
        self.settings = settings
        self.clients = clients
        self.topics = settings.topics
        self.partitions = settings.partitions
        self.codec = codec_for(settings)
        self.pairing = SlotPairing.for_codec(experiments, self.codec)
        self.metrics = metrics
        self.group = group
        self.sources = [
            self.topics.live_predictions,
            self.topics.shadow_predictions,
            self.topics.ground_truth,
        ]
        if experiments.needs_inputs:  # downstream decision / KPI functions read the inputs
            self.sources.append(self.topics.inputs)
        stores = Stores(experiments.join.store, store_directory(data_dir, group))
        self.consumer = clients.consumer(
            group_config(
                settings, group, logs=LIBRDKAFKA_LOGS, overrides=stores.group_member(group)
            )
        )
        self.offset_loss = OffsetLoss(
            settings, "join stage 1", metrics.count_lost, self.codec, clients=clients,
            paused=lambda: self.state.restoring,  # the inputs wait for the stores
        )  # fmt: skip
        producer = transactional_config(
            settings, group, timeout_ms=TRANSACTION_TIMEOUT_MS, logs=LIBRDKAFKA_LOGS
        )
        self.transactional_id: str = producer["transactional.id"]
        self.producer = ProducerWrapper(producer, log=log, clients=clients)
        self.transaction = TransactionalBatch(
            self.producer, self.consumer, self.watchdog, self._rewind
        )
        self.processed = 0
        self.max_record_bytes = record_limit(self.producer.max_bytes, STATE_PARTS)
        """Larger inputs are dead-lettered (``too_large``): state and events must fit."""
        slot_header = self.codec.header_of(JoinSlot)
        batch_header = self.codec.header_of(JoinEventBatch)
        self._owned: set[int] = set()
        self._at_end: set[tuple[str, int]] = set()
        self.clock = ExpiryClock(self.pairing.pair_ttl_ms, self.pairing.label_ttl_ms)
        self.state = OwnedStores(
            stores,
            self.topics.join_state,
            slot_header,
            self.clock.first_due,
            f"{self.pairing.pair_ttl_ms}/{self.pairing.label_ttl_ms}",
            lambda: clients.consumer(restore_config(settings, group, LIBRDKAFKA_LOGS)),
            clients.admin(admin_config(settings, quiet=True)),
            _slot_upgrades(self.codec),
        )
        self.parts = self.state.parts
        """The store of each input partition owned."""
        self.output = PairOutput(
            self.producer, settings, slot_header, batch_header, self.parts, metrics
        )

    def start(self) -> None:
        log.info("stage 1: transactional.id %s", self.transactional_id)
        self.transaction.init(30)
        self.consumer.subscribe(self.sources, on_assign=self._on_assign, on_revoke=self._on_revoke)

    def poll(self, timeout: float) -> int:
        """Process one batch (waiting up to ``timeout`` s for it), or go on with a restore
        for up to RESTORE_STEP_S; returns the records processed or restored (at least 1
        while a restore goes on)."""
        restoring = self.state.restoring
        messages = self.consumer.consume(self.batch_size, 0 if restoring else timeout)
        if messages:
            self.process(messages)
        if self.state.restoring:  # begun above (an assignment) or before
            return len(messages) + self._restore_step()
        self.state.mark(self.consumer)
        return len(messages)

    def close(self, leave: bool = False) -> None:
        """``leave``: hand the partitions over at once, also as a static member."""
        self.state.mark(self.consumer, force=True)
        try:
            if leave and self.state.stores.persistent:  # a static member
                leave_group(self.consumer)
            self.consumer.close()
        except KafkaException as exc:
            log.warning("join: closing the stage-1 consumer: %s", exc)
        self.watchdog.close()
        self.state.close()

    @property
    def pending(self) -> int:
        """Requests held, in every owned partition's store."""
        return self.state.pending

    def status(self) -> str:
        return (
            f"stage 1: {self.processed} records, {self.pending} requests pending, "
            f"partitions {sorted(self._owned)}{' (restoring)' if self.state.restoring else ''}"
        )

    def process(self, messages: list[Any]) -> None:
        """One transaction (:class:`~streams.kafka.TransactionalBatch`): the batch's
        events, state changes, dead letters and offsets."""
        decode, unpack, parts = self.codec.decode, Slot.unpack, self.parts
        pairing, first_due, at_end = self.pairing, self.clock.first_due, self._at_end
        # Each request's state stays a Slot for the whole batch and is packed once.
        touched: dict[StoreKey, Slot | None] = {}
        created: dict[StoreKey, int] = {}  # new request -> its first deadline
        dirty: dict[StoreKey, int] = {}  # key -> its partition (of the changelog too)
        offsets: dict[tuple[str, int], int] = {}
        topics: Counter[str] = Counter()
        outcomes: Counter[JoinOutcome] = Counter()
        accepted = 0
        now = now_ms()
        pairing.take_events()  # (what a batch that failed midway left queued)
        self.transaction.begin()  # step 1
        for message in messages:
            # (consumed messages always carry these; librdkafka types them optional)
            topic: str = message.topic()
            partition: int = message.partition()
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    at_end.add((topic, partition))
                elif not self.offset_loss.handle(self.consumer, message):
                    log.warning("join: consumer error: %s", error)
                continue
            source = (topic, partition)
            at_end.discard(source)
            offsets[source] = message.offset() + 1
            topics[topic] += 1
            value = message.value()
            if value is not None and len(value) > self.max_record_bytes:
                self._dead_letter(message, TOO_LARGE, f"{len(value)} bytes, over stage 1's "
                                  f"limit of {self.max_record_bytes}")  # fmt: skip
                continue
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
                packed = parts[partition].get(key)
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
                    created[key] = first_due(applied.first_seen_ms)
                touched[key] = applied
                dirty[key] = partition
            else:
                outcomes[applied] += 1
                touched[key] = slot
        emitted: Counter[tuple[JoinKind, str | None]] = Counter()
        self.output.produce_events(pairing.take_events(), emitted)  # step 2
        changes = self.output.write_states(touched, dirty)
        if self.transaction.commit(offsets):  # steps 3 and 4
            # The stores only ever hold committed changes (an abort rewound them).
            filed: dict[int, list[tuple[StoreKey, int]]] = {}
            for key, due in created.items():
                filed.setdefault(dirty[key], []).append((key, due))
            self.output.apply(changes, filed, {})
        self.processed += len(messages)
        self.metrics.count(self.metrics.events_in, topics)
        self.output.count_emitted(emitted)
        if accepted:
            outcomes[JoinOutcome.ACCEPTED] = accepted
        self.metrics.count(self.metrics.outcomes, {o.value: n for o, n in outcomes.items()})

    def _dead_letter(self, message: MessageLike, error_type: str, reason: str) -> None:
        """Dead-letter a consumed record in the open transaction (counted and logged)."""
        self.metrics.dead_lettered.labels(error_type).inc()
        log.warning("join: dead-lettered %s[%s]@%s: %s", message.topic(), message.partition(),
                    message.offset(), reason)  # fmt: skip
        letter = dead_letter(message, component="join", error_type=error_type, reason=reason)
        send_dead_letter(self.producer, self.topics.dlq, letter, self.codec)

    # ------------------------------------------------------------ rebalance and restore
    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        # Between batches (callbacks run inside consume): nothing is in flight. A
        # persistent store records how far it is and stays on disk for the next owner.
        self.state.mark(consumer, force=True)
        self.state.close()
        self._owned = set()
        self._at_end = set()

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        owned = {tp.partition for tp in partitions}
        if owned and max(owned) >= self.partitions:
            # Partitions were added to the inputs: their requests' states and events have
            # no partition to go to. Stop here (raised out of consume()), before a restore
            # that would wait on changelog partitions that do not exist.
            raise changed_partitions(consumer, co_partitioned(self.topics), self.partitions) or (
                TopicError(f"partitions changed while the join runs: input partition "
                           f"{max(owned)} assigned, the join runs with {self.partitions}")
            )  # fmt: skip
        # The restore runs in poll(), not here: a restore longer than max.poll.interval.ms
        # inside this callback would cost the group an extra rebalance. The inputs wait,
        # paused, until their stores are up to date (as Kafka Streams does).
        self.state.begin(owned)
        self._owned = owned
        consumer.assign(partitions)
        consumer.pause(partitions)

    def _restore_step(self) -> int:
        """Go on with the restore; once done, resume the inputs. Returns 1 while it goes
        on, then the changelog records it replayed (at least 1)."""
        if not self.state.step(RESTORE_STEP_S):
            return 1
        self.consumer.resume(self.consumer.assignment())
        self.metrics.pending.set(self.pending)
        return max(1, sum(r.records for r in self.state.last_restore.values()))

    def _rewind(self) -> None:
        """Back to the last committed transaction: its state and its input offsets."""
        self.state.restore(self._owned)
        self._at_end = set()
        rewind_inputs(self.consumer)

    # ------------------------------------------------------------------ expiry
    def expire(self) -> None:
        """Settle the requests due (:mod:`streams.join.pairs_expiry`), in transactions
        of up to ``batch_size`` per partition, for EXPIRE_BUDGET_S at most."""
        if (
            not self._owned
            or self.state.restoring
            or not caught_up(self.consumer, self._at_end, self.sources, self.metrics)
        ):
            # Behind on the topics (a backlog, a restart): the other half of a pending
            # request may still be unread, so nothing can be declared missing yet.
            return
        budget = time.monotonic() + EXPIRE_BUDGET_S
        while self._expire_pass() and time.monotonic() < budget:
            pass
        self.metrics.pending.set(self.pending)

    def _expire_pass(self) -> bool:
        """One transaction of due requests; whether a partition had more due."""
        now = now_ms()
        settled = self.clock.take_due(self.parts, now, self.batch_size)
        if not settled:
            return False
        touched: dict[StoreKey, Slot | None] = {}
        dirty: dict[StoreKey, int] = {}
        emitted: Counter[tuple[JoinKind, str | None]] = Counter()
        self.pairing.take_events()  # (what a batch that failed midway left queued)
        self.transaction.begin()
        filed = self.clock.settle(self.pairing, self.parts, settled, now, touched, dirty)
        self.output.produce_events(self.pairing.take_events(), emitted)
        changes = self.output.write_states(touched, dirty)
        if not self.transaction.commit({}):
            return False  # aborted and rewound: the next call looks again
        self.output.apply(changes, filed, settled)
        self.output.count_emitted(emitted)
        return any(len(due) >= self.batch_size for due in settled.values())


def _slot_upgrades(codec: Codec) -> dict[bytes, Any]:
    """The older JoinSlot versions the restore rewrites: version 1, unless its id is the
    current one's (a registry that gave both the same id: nothing to tell apart)."""
    old, current = codec.header_of(JoinSlot, version=1), codec.header_of(JoinSlot)
    return {} if old == current else {old: Slot.upgrade_v1}
