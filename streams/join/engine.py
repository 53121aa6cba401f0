"""The join worker: two consumer groups driving :class:`SlotPairing` and :class:`Judge`.

Topology (every per-request topic keyed by request id and co-partitioned)::

    predictions.live ─┐
    predictions.shadow├─ stage 1 (state by request id) ─► <prefix>.join.events (key experiment)
    ground_truth ─────┘        └─ changelog ─► <prefix>.join.state (compacted)
    <prefix>.join.events ─ stage 2 (monitors per experiment) ─► metrics, alerts

Stage 1 is exactly-once with Kafka transactions: each batch's join events, the state
changes that record them, any dead letters and the batch's input offsets commit
together or not at all. A worker killed mid-batch leaves an open transaction that the
broker aborts (``transaction.timeout.ms``); whoever owns the partitions next restores the
state from the changelog and re-reads the inputs from the committed offsets, so nothing
is lost or emitted twice. Stage 2 reads only committed events.

Stage 2's state is a fold over the join-events topic: after every rebalance of its group
it is rebuilt from the beginning of the partitions it owns (no changelog, no commits);
snapshots, alerts and verdicts go out only once it has caught up.

Expiry runs only when every owned input partition is read to its end, so a request whose
other half is still unread (a backlog, a restart) is never declared missing.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
from streams.join.experiments import ExperimentsFile
from streams.join.judge import Judge
from streams.join.metrics import JoinMetrics
from streams.join.slots import Slot, SlotPairing
from streams.join.store import StateStore, open_store
from streams.records import DeadLetter, GroundTruth, JoinEvent, JoinSlot, ModelInput, Prediction
from streams.settings import Settings
from streams.topics import partition_of

__all__ = ["JoinWorker"]

log = logging.getLogger(__name__)

BATCH_SIZE = 5000
"""Records per stage-1 transaction at most."""
POLL_S = 0.05
SESSION_TIMEOUT_MS = 10_000
REBALANCE_TIMEOUT_MS = 30_000
"""Also librdkafka's max.poll.interval: a worker killed while its group rebalances is
dropped after this long (the classic protocol waits that long for every member)."""
TRANSACTION_TIMEOUT_MS = 10_000
"""How long a killed worker's open transaction holds back readers before the broker
aborts it."""
STATUS_EVERY_S = 30.0
_REQUEST_RECORDS = (Prediction, GroundTruth, ModelInput)


def _now_ms() -> int:
    return int(time.time() * 1000)


class JoinWorker:
    """One join process: stage 1 and stage 2 in one loop, sharing partitions with any
    other process started with the same settings.

    Parameters
    ----------
    settings
        Broker, topic prefix and partition count (must match the topics).
    experiments
        The parsed experiments file.
    data_dir
        Where ``rocksdb://`` state lives.
    metrics
        Prometheus metrics to update (a fresh registry by default).

    Examples
    --------
    >>> worker = JoinWorker(settings, experiments)  # doctest: +SKIP
    >>> worker.run()  # until SIGTERM / SIGINT  # doctest: +SKIP
    """

    def __init__(
        self,
        settings: Settings,
        experiments: ExperimentsFile,
        *,
        data_dir: Path | None = None,
        metrics: JoinMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.experiments = experiments
        self.topics = settings.topics
        self.partitions = settings.partitions
        self.codec = Codec()
        self.pairing = SlotPairing.for_codec(experiments, self.codec)
        self.judge = Judge(experiments)
        self.metrics = metrics or JoinMetrics()
        self.latest: dict[str, dict[str, Any]] = {}
        """The last report per experiment this worker owns (the /verdicts/ page)."""
        join = experiments.join
        self.group = f"{join.app_id}-{settings.topic_prefix}"
        self.store: StateStore = open_store(join.store, data_dir or settings.cache_dir / "join")
        self._slot_header = self.codec.header_of(JoinSlot)
        self._stop = threading.Event()
        self._sources = [
            self.topics.live_predictions,
            self.topics.shadow_predictions,
            self.topics.ground_truth,
        ]
        if experiments.needs_inputs:  # downstream decision / KPI functions read the inputs
            self._sources.append(self.topics.inputs)
        group_config = {
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "partition.assignment.strategy": "range",
            "session.timeout.ms": SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": SESSION_TIMEOUT_MS // 4,
            "max.poll.interval.ms": REBALANCE_TIMEOUT_MS,
            # "Read to the end" for expiry and the stage-2 rebuild: an end-of-partition
            # event, which (unlike offsets) also counts transaction markers as read.
            "enable.partition.eof": True,
        }
        self.pairs = Consumer(settings.confluent_config(**{"group.id": self.group, **group_config}))
        self.judging = Consumer(
            settings.confluent_config(**{"group.id": f"{self.group}-judge", **group_config})
        )
        self.producer = Producer(
            settings.confluent_config(
                **{
                    "transactional.id": f"{self.group}-{uuid.uuid4().hex[:12]}",
                    "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
                    "linger.ms": 5,
                    "batch.num.messages": 10_000,
                    "queue.buffering.max.messages": 1_000_000,
                }
            )
        )
        self.reports = Producer(
            settings.confluent_config(**{"enable.idempotence": True, "linger.ms": 5})
        )
        self._owned_pairs: set[int] = set()
        self._at_end: set[tuple[str, int]] = set()
        self._event_partitions: dict[str, int] = {}
        self._owned_events: set[int] = set()
        self._rebuild_to: dict[int, int] = {}
        """Stage-2 partitions still being re-read after a rebalance: the end to reach."""
        self._expire_every = join.expire_every_s
        self._report_every = join.snapshot_every_s
        self._min_ttl_ms = min(self.pairing.pair_ttl_ms, self.pairing.label_ttl_ms)
        self._processed = 0

    # ------------------------------------------------------------------ lifecycle
    def stop(self) -> None:
        """Ask :meth:`run` to finish its current batch and return."""
        self._stop.set()

    def run(self, install_signals: bool = True) -> None:
        """Consume until :meth:`stop` (or SIGTERM / SIGINT)."""
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self._stop.set())
        self.producer.init_transactions(30)
        self.pairs.subscribe(
            self._sources, on_assign=self._on_assign_pairs, on_revoke=self._on_revoke_pairs
        )
        self.judging.subscribe(
            [self.topics.join_events],
            on_assign=self._on_assign_events,
            on_revoke=self._on_revoke_events,
        )
        next_expiry = time.monotonic() + self._expire_every
        next_report = time.monotonic() + self._report_every
        next_status = time.monotonic() + STATUS_EVERY_S
        try:
            while not self._stop.is_set():
                messages = self.pairs.consume(BATCH_SIZE, POLL_S)
                if messages:
                    self._stage1(messages)
                events = self.judging.consume(BATCH_SIZE, 0 if messages else POLL_S)
                if events:
                    self._stage2(events)
                self.reports.poll(0)
                now = time.monotonic()
                if now >= next_expiry:
                    next_expiry = now + self._expire_every
                    self._expire()
                if now >= next_report:
                    next_report = now + self._report_every
                    self._publish_reports()
                if now >= next_status:
                    next_status = now + STATUS_EVERY_S
                    self._status()
        finally:
            self._close()

    def _close(self) -> None:
        for consumer in (self.pairs, self.judging):
            try:
                consumer.close()
            except KafkaException as exc:
                log.warning("join: closing a consumer: %s", exc)
        self.reports.flush(10)
        self.store.close()

    # ------------------------------------------------------------------ stage 1
    def _stage1(self, messages: list[Message]) -> None:
        """One transaction: the batch's events, state changes, dead letters and offsets."""
        decode = self.codec.decode
        pairing = self.pairing
        store_get = self.store.get
        at_end = self._at_end
        # Each request's state stays a Slot for the whole batch and is packed once.
        touched: dict[bytes, Slot | None] = {}
        dirty: dict[bytes, int] = {}  # key -> its partition (of the changelog too)
        offsets: dict[tuple[str, int], int] = {}
        topics: Counter[str] = Counter()
        emitted: Counter[tuple[str, str]] = Counter()
        events_topic = self.topics.join_events
        now = _now_ms()
        self.producer.begin_transaction()
        for message in messages:
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    at_end.add((topic, partition))
                else:
                    log.warning("join: consumer error: %s", error)
                continue
            at_end.discard((topic, partition))
            offsets[(topic, partition)] = offset + 1
            topics[topic] += 1
            value = message.value()
            try:
                record = decode(value, topic=topic, partition=partition, offset=offset)
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
            key = record.request_id.encode()  # type: ignore[union-attr]
            if key in touched:
                slot = touched[key]
            else:
                packed = store_get(key)
                slot = None if packed is None else Slot.unpack(packed)
            if record_type is Prediction:
                step = pairing.on_prediction(slot, record, value, now)  # type: ignore[arg-type]
            elif record_type is GroundTruth:
                step = pairing.on_label(slot, record, now)  # type: ignore[arg-type]
            else:
                step = pairing.on_input(slot, record, value, now)  # type: ignore[arg-type]
            if step.changed:
                touched[key] = step.slot
                dirty[key] = partition
            elif key not in touched:
                touched[key] = slot
            for event in step.events:
                self._produce(
                    events_topic, event.key, event.value, self._event_partition(event.experiment)
                )
                emitted[(event.kind.value, event.reason or "")] += 1
        self._write_states(touched, dirty)
        self._commit(offsets)
        self._processed += len(messages)
        self.metrics.count(self.metrics.events_in, topics)
        self.metrics.count(self.metrics.join_events, emitted)
        self.metrics.count(self.metrics.outcomes, pairing.outcomes)
        pairing.outcomes.clear()

    def _event_partition(self, experiment: str) -> int:
        partition = self._event_partitions.get(experiment)
        if partition is None:
            partition = partition_of(experiment.encode(), self.partitions)
            self._event_partitions[experiment] = partition
        return partition

    def _write_states(self, touched: dict[bytes, Slot | None], dirty: dict[bytes, int]) -> None:
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
                self._produce(topic, key, None, partition)
            else:
                packed = slot.pack()
                store.put(key, packed)
                self._produce(topic, key, header + packed, partition)

    def _produce(self, topic: str, key: bytes, value: bytes | None, partition: int) -> None:
        try:
            self.producer.produce(topic, value, key, partition)
        except BufferError:
            self.producer.poll(0.5)  # the local queue is full: let deliveries drain
            self.producer.produce(topic, value, key, partition)

    def _commit(self, offsets: dict[tuple[str, int], int]) -> None:
        if offsets:
            self.producer.send_offsets_to_transaction(
                [TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                self.pairs.consumer_group_metadata(),
            )
        try:
            self.producer.commit_transaction()
        except KafkaException as exc:
            # The store already holds this batch's states; only a restart (which restores
            # from the changelog and re-reads from the last commit) makes them agree again.
            log.error("join: transaction failed, stopping so the work is redone: %s", exc)
            self._stop.set()
            raise

    def _dead_letter(self, message: Message, error_type: str, reason: str) -> None:
        self.metrics.dead_lettered.labels(error_type).inc()
        log.warning(
            "join: dead-lettered %s[%d]@%d: %s",
            message.topic(),
            message.partition(),
            message.offset(),
            reason,
        )
        letter = DeadLetter(
            "join",
            message.topic() or "",
            message.partition() or 0,
            message.offset() or 0,
            error_type,
            reason,
            _now_ms(),
            message.key(),
            message.value(),
        )
        key = message.key()
        self._produce(
            self.topics.dlq,
            key or b"",
            self.codec.encode(letter),
            partition_of(key or b"", self.partitions),
        )

    def _on_revoke_pairs(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Between batches (callbacks run inside consume): nothing is in flight.
        self.store.clear()
        self._owned_pairs = set()
        self._at_end = set()

    def _on_assign_pairs(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        owned = {tp.partition for tp in partitions}
        started = time.monotonic()
        restored = self._restore(owned)
        self._owned_pairs = owned
        log.info(
            "join: stage 1 owns partitions %s; restored %d requests in %.1fs",
            sorted(owned),
            restored,
            time.monotonic() - started,
        )

    def _restore(self, owned: set[int]) -> int:
        """Read the changelog partitions of ``owned`` to their (committed) end."""
        self.store.clear()
        if not owned:
            return 0
        reader = Consumer(
            self.settings.confluent_config(
                **{
                    "group.id": f"{self.group}-restore",
                    "enable.auto.commit": False,
                    "isolation.level": "read_committed",
                    "enable.partition.eof": True,
                }
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
                    key, value = message.key(), message.value()
                    if value is None:
                        store.delete(key)
                    else:
                        store.put(key, value[header_size:])
                    if message.offset() + 1 >= ends[message.partition()]:
                        remaining.discard(message.partition())
            return len(store)
        finally:
            reader.close()

    # ------------------------------------------------------------------ expiry
    def _expire(self) -> None:
        if not self._owned_pairs or not self._caught_up():
            # Behind on the topics (a backlog, a restart): the other half of a pending
            # request may still be unread, so nothing can be declared missing yet.
            return
        now = _now_ms()
        horizon = now - self._min_ttl_ms
        touched: dict[bytes, Slot | None] = {}
        dirty: dict[bytes, int] = {}
        emitted: Counter[tuple[str, str]] = Counter()
        pending = 0
        self.producer.begin_transaction()
        for key, packed in self.store.items():
            pending += 1
            if Slot.first_seen(packed) > horizon:
                continue
            step = self.pairing.expire(key.decode(), Slot.unpack(packed), now)
            if step.changed:
                touched[key] = step.slot
                dirty[key] = partition_of(key, self.partitions)
            for event in step.events:
                self._produce(
                    self.topics.join_events,
                    event.key,
                    event.value,
                    self._event_partition(event.experiment),
                )
                emitted[(event.kind.value, event.reason or "")] += 1
        self._write_states(touched, dirty)
        self._commit({})
        self.metrics.count(self.metrics.join_events, emitted)
        self.metrics.pending.set(pending - sum(1 for k in dirty if touched[k] is None))

    def _caught_up(self) -> bool:
        """Whether every owned input partition was read to its end (librdkafka reports
        reaching it), and the lag gauges from the last fetched high watermarks."""
        assigned = self.pairs.assignment()
        if not assigned:
            return False
        lags: Counter[str] = Counter()
        for tp in self.pairs.position(assigned):
            _low, high = self.pairs.get_watermark_offsets(tp, cached=True) or (0, 0)
            if tp.offset >= 0 and high >= 0:
                lags[tp.topic] += max(high - tp.offset, 0)
        for topic in self._sources:
            self.metrics.lag.labels(topic).set(lags.get(topic, 0))
        return all((tp.topic, tp.partition) in self._at_end for tp in assigned)

    # ------------------------------------------------------------------ stage 2
    def _stage2(self, messages: list[Message]) -> None:
        decode_as = self.codec.decode_as
        apply = self.judge.apply
        rebuilding = self._rebuild_to
        for message in messages:
            partition, offset = message.partition(), message.offset()
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("join: consumer error: %s", error)
                elif rebuilding.pop(partition, None) is not None and not rebuilding:
                    log.info("join: stage 2 rebuilt (partitions %s)", sorted(self._owned_events))
                continue
            try:
                event = decode_as(
                    JoinEvent,
                    message.value(),
                    topic=message.topic(),
                    partition=partition,
                    offset=offset,
                )
            except CodecError as exc:
                if not rebuilding:  # a rebuild re-reads what was dead-lettered already
                    self._report_dead_letter(message, exc.reason)
                continue
            if not apply(event):
                self.metrics.judged_duplicates.inc()

    def _report_dead_letter(self, message: Message, reason: str) -> None:
        self.metrics.dead_lettered.labels("undecodable").inc()
        log.warning(
            "join: dead-lettered %s[%d]@%d: %s",
            message.topic(),
            message.partition(),
            message.offset(),
            reason,
        )
        letter = DeadLetter(
            "join",
            message.topic() or "",
            message.partition() or 0,
            message.offset() or 0,
            "undecodable",
            reason,
            _now_ms(),
            message.key(),
            message.value(),
        )
        self.reports.produce(self.topics.dlq, self.codec.encode(letter), message.key())

    def _on_revoke_events(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._owned_events = set()
        self._rebuild_to = {}

    def _on_assign_events(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Rebuild stage 2 for the experiments this worker now owns: re-read from the start."""
        self.judge = Judge(self.experiments)
        self._owned_events = {tp.partition for tp in partitions}
        self._rebuild_to = {}
        for tp in partitions:
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            if high > low:
                self._rebuild_to[tp.partition] = high
        consumer.assign(
            [TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING) for tp in partitions]
        )
        log.info(
            "join: stage 2 owns partitions %s; re-reading %d events",
            sorted(self._owned_events),
            sum(self._rebuild_to.values()),
        )

    def _publish_reports(self) -> None:
        if self._rebuild_to:
            return  # counts and rules only mean something once the fold is complete
        now = _now_ms()
        for name in self.judge.experiments:
            if partition_of(name.encode(), self.partitions) not in self._owned_events:
                continue
            report = self.judge.report(name, now)
            key = name.encode()
            self.reports.produce(self.topics.metrics, self.codec.encode(report.snapshot), key)
            for alert in report.alerts:
                self.reports.produce(
                    self.topics.alerts, self.codec.encode(alert), alert.dedup_key.encode()
                )
            if report.verdict is not None:
                self.reports.produce(self.topics.alerts, self.codec.encode(report.verdict), key)
            decision = report.snapshot.decision
            self.metrics.decision.labels(name).set(
                {"reject": -1, "continue": 0, "promote": 1}.get(decision, 0)
            )
            self.latest[name] = {
                "decision": decision,
                "reason": report.snapshot.reason,
                "counts": dict(report.snapshot.counts),
                "timestamp_ms": now,
            }
        self.reports.poll(0)

    def _status(self) -> None:
        log.info(
            "join: %d records processed; %d requests pending; stage 1 partitions %s, "
            "stage 2 partitions %s%s",
            self._processed,
            len(self.store),
            sorted(self._owned_pairs),
            sorted(self._owned_events),
            " (rebuilding)" if self._rebuild_to else "",
        )


def serve_verdicts(worker: JoinWorker, port: int) -> Callable[[], None]:
    """Serve ``GET /verdicts/`` (JSON: the latest report per experiment) on 127.0.0.1;
    returns a function that stops the server."""
    import json
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.rstrip("/") != "/verdicts":
                self.send_error(404, "only /verdicts/ is served here")
                return
            body = json.dumps(dict(worker.latest)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("verdicts page: " + format, *args)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, name="verdicts", daemon=True)
    thread.start()
    return server.shutdown
