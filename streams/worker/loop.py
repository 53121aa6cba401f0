"""The Kafka loop of a shadow worker: consume inputs, score, produce, commit when delivered.

At-least-once, without waiting on the broker in the hot path: offsets are stored with
``store_offsets`` (``enable.auto.offset.store=false``) only once every prediction and dead
letter produced before them has been delivered; librdkafka's auto-commit then commits
stored offsets only. Batch *k+1* is scored while batch *k* is in flight. Deliveries are
accounted without a Python callback per record (:class:`~streams.kafka.ProducerWrapper`):
the micro-batches in flight are *settled* together whenever the producer's queue is
empty, and at least every ``SETTLE_EVERY_S`` by a flush (:mod:`streams.worker.delivery`).
A rebalance flushes, stores and commits before partitions go; SIGTERM (a stop event)
drains the same way. A record that finally fails delivery stops the worker with
:class:`WorkerError` without committing past it, so a restart re-reads it. While every
model thread is stuck in a call past its deadline the worker holds the micro-batch it
could not finish, pauses its partitions (stops taking inputs) and says so (status line,
``shadow_worker_stalled``, a warning) until a thread is free again
(:mod:`streams.worker.held`).

The loop gets its clients from a :class:`~streams.kafka.KafkaClients` factory, so its unit
tests run it on an in-process fake of the broker.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from confluent_kafka import KafkaException, TopicPartition

from streams.codec import Codec, EncodeError, codec_for
from streams.kafka import CONFLUENT, ConsumerLike, KafkaClients, ProducerWrapper
from streams.kafka.assignment import assignment_lag, describe_partitions, pause_assignment
from streams.kafka.config import base_config, producer_config
from streams.kafka.deadletter import dead_letter, send_dead_letter
from streams.kafka.limits import ENVELOPE_BYTES, record_limit
from streams.kafka.offset_loss import OffsetLoss
from streams.process_cost import MIB, WorkerCost
from streams.records import ModelInput, Prediction, Role
from streams.settings import Settings
from streams.topics import TopicError, describe_topics
from streams.worker.batch import Batch, Reject, assemble
from streams.worker.config import WorkerConfig
from streams.worker.delivery import SETTLE_EVERY_S, SETTLE_FLUSH_S, Deliveries, InFlight
from streams.worker.held import HeldBatch
from streams.worker.metrics import WorkerMetrics
from streams.worker.model import ModelAdapter, Outcome

__all__ = ["ShadowWorker", "WorkerError"]

log = logging.getLogger("streams.worker")
LIBRDKAFKA_LOGS = "streams.worker.librdkafka"
"""Where the worker's clients log (rate-limited: a broker outage makes many lines)."""
LAG_EVERY = 5.0


class WorkerError(RuntimeError):
    """The worker had to stop: a delivery failed for good, or Kafka is unusable."""


class ShadowWorker:
    """Scores every input of the inputs topic with one candidate model version.

    Parameters
    ----------
    settings
        Kafka connection and topic names.
    model
        A :class:`~streams.worker.model.ModelAdapter`, or any model it accepts.
    version
        The candidate version written into every prediction.
    config
        Batching, group and reporting options.
    metrics
        Where to count; a new :class:`WorkerMetrics` by default (``self.metrics``).
    codec
        Decodes the inputs and encodes the predictions.
    clients
        Where its Kafka clients come from (an in-process fake in unit tests).

    Examples
    --------
    >>> import threading
    >>> from streams.settings import Settings
    >>> worker = ShadowWorker(Settings(), lambda features: 1.0, "v2",
    ...                       config=WorkerConfig(name="churn"))
    >>> worker.group_id
    'shadow-worker.churn.v2'
    >>> stop = threading.Event()
    >>> threading.Thread(target=worker.run, args=(stop,)).start()  # doctest: +SKIP
    >>> stop.set()  # drains, commits and returns  # doctest: +SKIP
    """

    def __init__(
        self,
        settings: Settings,
        model: ModelAdapter | Any,
        version: str,
        *,
        config: WorkerConfig | None = None,
        metrics: WorkerMetrics | None = None,
        codec: Codec | None = None,
        clients: KafkaClients = CONFLUENT,
        cost: WorkerCost | None = None,
    ) -> None:
        self.settings = settings
        self.cost = cost or WorkerCost()
        """The process's memory (and the model's load time and size) each prediction carries."""
        self.adapter = model if isinstance(model, ModelAdapter) else ModelAdapter(model)
        self.version = version
        self.config = config or WorkerConfig()
        self.group_id = self.config.group_for(version)
        self.metrics = metrics or WorkerMetrics(model=self.config.name, version=version)
        if self.adapter.pool is not None:
            self.metrics.threads = self.adapter.pool.size
        self.codec = codec or codec_for(settings)
        self.clients = clients
        self.offset_loss = OffsetLoss(
            settings, f"worker {self.config.name}@{version}", self.metrics.count_lost,
            self.codec, start=self.config.start, cooperative=True, clients=clients,
        )  # fmt: skip
        self._deliveries = Deliveries(self.metrics, self.config.drain_timeout)
        self._consumer: ConsumerLike | None = None
        self._producer: ProducerWrapper | None = None
        self._held: HeldBatch | None = None
        self._backlog: list[Any] = []
        """Messages consumed while a batch was held (a partition assigned meanwhile)."""

    # -- configuration ---------------------------------------------------------------------
    def consumer_config(self) -> dict[str, Any]:
        session = self.config.session_timeout_ms
        return base_config(
            self.settings,
            logs=LIBRDKAFKA_LOGS,
            overrides={
                "group.id": self.group_id,
                "client.id": f"{self.group_id}-consumer",
                "enable.auto.commit": True,
                "auto.commit.interval.ms": 1000,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "error",  # config.start: streams.kafka.offset_loss
                "session.timeout.ms": session,
                "heartbeat.interval.ms": max(min(3000, session // 3), 100),
                "partition.assignment.strategy": "cooperative-sticky",
                **self.config.consumer_overrides,
            },
        )

    def producer_config(self) -> dict[str, Any]:
        """The predictions' producer. ``linger.ms=50``: nobody waits for a shadow
        prediction, and records batched 10x larger cost the broker (on the same cores,
        often) about half the CPU per record; an idle loop flushes at once.
        ``message.timeout.ms=0`` (no delivery timeout, whatever a client.properties
        says): a prediction waits out any outage, so an outage longer than the timeout
        no longer stops the worker (its inputs stay uncommitted until delivered)."""
        return producer_config(
            self.settings,
            logs=LIBRDKAFKA_LOGS,
            overrides={
                "client.id": f"{self.group_id}-producer",
                "linger.ms": 50,
                "batch.num.messages": 10_000,
                "compression.type": "none",
                "queue.buffering.max.messages": 1_000_000,
                "message.timeout.ms": 0,
                **self.config.producer_overrides,
            },
        )

    def check_topics(self) -> None:
        """Raise :class:`~streams.topics.TopicError` unless the worker's topics exist."""
        topics = self.settings.topics
        needed = {topics.inputs, topics.shadow_predictions, topics.dlq}
        missing = [
            s.name
            for s in describe_topics(self.settings, clients=self.clients)
            if s.name in needed and s.partitions is None
        ]
        if missing:
            raise TopicError(
                f"missing topics: {', '.join(missing)} (run `shadow-eval topics create`)"
            )

    # -- the loop --------------------------------------------------------------------------
    def run(self, stop: threading.Event | None = None) -> WorkerMetrics:
        """Consume, score and produce until ``stop`` is set, then drain and commit.

        Raises
        ------
        TopicError
            A topic is missing or Kafka is unreachable.
        WorkerError
            A prediction or dead letter could not be delivered (nothing after it is
            committed).
        """
        stop = stop or threading.Event()
        self.check_topics()
        consumer = self._consumer = self.clients.consumer(self.consumer_config())
        producer = self._producer = ProducerWrapper(
            self.producer_config(), log=log, clients=self.clients
        )
        consumer.subscribe(
            [self.settings.topics.inputs],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        batch_size, batch_timeout = self.config.batch_size, self.config.batch_ms / 1000.0
        next_lag = next_status = time.monotonic()
        self._deliveries.settle_due = next_lag + SETTLE_EVERY_S
        try:
            while not stop.is_set() and self._deliveries.failure is None:
                messages = consumer.consume(batch_size, batch_timeout)
                if self._held is not None:
                    self._backlog += messages
                    self._retry_held(pause=bool(messages))
                elif messages or self._backlog:
                    messages, self._backlog = self._backlog + messages, []
                    self._process(messages)
                producer.poll(0)
                now = time.monotonic()
                # Idle: no reason to let the last outputs linger, settle them now.
                self._deliveries.settle(
                    producer, consumer, now, None if messages else SETTLE_FLUSH_S
                )
                if now >= next_lag:
                    self._update_lag()
                    next_lag = now + LAG_EVERY
                if self.config.status_every and now >= next_status:
                    if now > next_status:  # not the first round
                        log.info(self.metrics.status_line())
                    next_status = now + self.config.status_every
        finally:
            self._drain()
            consumer.close()
            self._consumer = self._producer = None
        log.info("stopped: %s", self.metrics.status_line())
        if self._deliveries.failure is not None:
            raise WorkerError(self._deliveries.failure)
        return self.metrics

    def _process(self, messages: list[Any]) -> None:
        started = time.perf_counter()
        metrics = self.metrics
        producer = self._producer
        assert producer is not None
        batch = assemble(
            messages,
            self.codec,
            model_name=self.config.only_model,
            required_for=self.adapter.required_features,
            max_bytes=record_limit(producer.max_bytes),
        )
        metrics.consumed += len(messages) - len(batch.errors)  # records, not error events
        for event in batch.errors:
            if self._consumer is None or not self.offset_loss.handle(self._consumer, event):
                log.warning("consumer error: %s", event.error())
        metrics.skipped += batch.skipped
        held = HeldBatch(batch, self.adapter.score(batch.inputs), started)
        if held.unscored:
            self._hold(held)
        else:
            self._emit(batch, held.done(), started)
        self._count_pool()

    def _emit(self, batch: Batch, outcomes: list[Outcome], started: float) -> None:
        producer = self._producer
        assert producer is not None
        errors = sum(1 for outcome in outcomes if outcome.error is not None)
        self.metrics.model_cpu_seconds += sum(o.cpu_ms or 0.0 for o in outcomes) / 1000.0
        flight = self._deliveries.add(batch.next_offsets, len(outcomes), len(batch.rejects), errors)
        records = self._predictions(batch.inputs, outcomes, flight, producer.max_bytes)
        producer.produce_all(self.settings.topics.shadow_predictions, records)
        for reject in batch.rejects:
            self._dead_letter(reject)
        self.metrics.observe_batch(time.perf_counter() - started)

    # -- every model thread stuck ----------------------------------------------------------
    def _hold(self, held: HeldBatch) -> None:
        self._held = held
        self.metrics.stalled = 1
        log.warning(
            "all %d model threads are stuck in calls past their deadline: not taking "
            "inputs until one returns (%d inputs held)",
            self.metrics.threads, held.unscored,
        )  # fmt: skip
        self._pause(True)

    def _retry_held(self, pause: bool) -> None:
        held = self._held
        assert held is not None
        done = held.retry(self.adapter)
        self._count_pool()
        if not done:
            if pause:  # a partition assigned while stalled
                self._pause(True)
            return
        self._held = None
        self.metrics.stalled = 0
        log.warning("a model thread is free again: taking inputs")
        self._emit(held.batch, held.done(), held.started)
        self._pause(False)

    def _pause(self, pause: bool) -> None:
        failed = self._consumer and pause_assignment(self._consumer, pause)
        if failed:
            log.warning("cannot %s the inputs: %s", "pause" if pause else "resume", failed)

    def _count_pool(self) -> None:
        adapter, metrics = self.adapter, self.metrics
        metrics.timeouts, metrics.hung_threads = adapter.timeouts, adapter.hung_threads
        metrics.model_restarts = adapter.restarts

    def _predictions(
        self,
        inputs: list[ModelInput],
        outcomes: list[Outcome],
        flight: InFlight,
        max_bytes: int,
    ) -> list[tuple[bytes, bytes]]:
        """``(value, key)`` of each input's prediction; an output that cannot be encoded,
        or too large to produce, becomes an error prediction (counted)."""
        limit = max_bytes - ENVELOPE_BYTES
        encode, version, shadow = self.codec.encode, self.version, Role.SHADOW
        now_ms = int(time.time() * 1000)
        records: list[tuple[bytes, bytes]] = []
        append = records.append
        cost = self.cost.sample()
        worker, rss, peak, load_s, model_mb = (
            cost.worker, cost.rss_mb, cost.peak_mb, cost.load_s, cost.model_mb
        )  # fmt: skip
        self.metrics.memory_bytes = (rss or 0.0) * MIB
        self.metrics.peak_memory_bytes = peak * MIB
        for record, outcome in zip(inputs, outcomes, strict=True):
            value, probabilities, latency_ms, error, cpu_ms = outcome
            request_id = record.request_id
            prediction = Prediction(
                request_id,
                record.model,
                version,
                shadow,
                now_ms,
                value,
                probabilities,
                latency_ms,
                error,
                record.segments,
                cpu_ms,
                worker,
                rss,
                peak,
                load_s,
                model_mb,
            )
            try:
                data = encode(prediction)
                if len(data) > limit:
                    raise EncodeError(f"{len(data)} bytes, over message.max.bytes ({max_bytes})")
            except EncodeError as exc:
                flight.errors += error is None
                data = encode(Prediction(
                    request_id, record.model, version, shadow, now_ms,
                    latency_ms=latency_ms, error=f"unencodable output: {exc}",
                    segments=record.segments,
                ))  # fmt: skip
            append((data, request_id.encode()))
        return records

    def _dead_letter(self, reject: Reject) -> None:
        letter = dead_letter(
            reject.message, component="worker", error_type=reject.error_type, reason=reject.reason
        )
        log.debug("dead letter %s[%s]@%s: %s", letter.source_topic,
                  letter.source_partition, letter.source_offset, letter.reason)  # fmt: skip
        assert self._producer is not None
        send_dead_letter(self._producer, self.settings.topics.dlq, letter, self.codec)

    def _drain(self) -> None:
        self._deliveries.drain(self._producer, self._consumer)

    # -- rebalances ------------------------------------------------------------------------
    def _on_assign(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        log.info("assigned %s", describe_partitions(partitions))

    def _on_revoke(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        log.info("revoked %s; delivering and committing first", describe_partitions(partitions))
        if self._held is not None:
            self._held.forget((tp.topic, tp.partition) for tp in partitions)
        self._drain()

    def _on_lost(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        log.warning("lost %s; their uncommitted inputs will be redelivered to others",
                    describe_partitions(partitions))  # fmt: skip
        lost = {(tp.topic, tp.partition) for tp in partitions}
        if self._held is not None:
            self._held.forget(lost)
        self._deliveries.forget(lost)

    def _update_lag(self) -> None:
        if self._consumer is None:
            return
        try:
            self.metrics.lag = assignment_lag(self._consumer)
        except KafkaException as exc:
            log.debug("cannot compute lag: %s", exc)
