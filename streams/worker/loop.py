"""The Kafka loop of a shadow worker: consume inputs, score, produce, commit when delivered.

At-least-once, without waiting on the broker in the hot path: offsets are stored with
``store_offsets`` (``enable.auto.offset.store=false``) only when every prediction and dead
letter of their micro-batch (and of every earlier batch) has been delivered; librdkafka's
auto-commit then commits stored offsets only. Batch *k+1* is scored while batch *k* is in
flight. A rebalance flushes, stores and commits before partitions go; SIGTERM (a stop
event) drains the same way. A message that finally fails delivery stops the worker with
:class:`WorkerError` without committing past it, so a restart re-reads it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import replace
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from streams.codec import Codec, EncodeError
from streams.dlq import dead_letter, send_dead_letter
from streams.records import Prediction, Role
from streams.settings import Settings
from streams.topics import TopicError, describe_topics
from streams.worker.batch import Reject, assemble
from streams.worker.config import WorkerConfig
from streams.worker.metrics import WorkerMetrics
from streams.worker.model import ModelAdapter

__all__ = ["ShadowWorker", "WorkerError"]

log = logging.getLogger("streams.worker")
PARTITION_ANY = -1
LAG_EVERY = 5.0


class WorkerError(RuntimeError):
    """The worker had to stop: a delivery failed for good, or Kafka is unusable."""


class _InFlight:
    """One micro-batch's outputs awaiting delivery and the offsets they unlock."""

    __slots__ = ("delivered", "errors", "failure", "letters", "offsets", "pending")

    def __init__(self, offsets: dict[tuple[str, int], int], pending: int, errors: int) -> None:
        self.offsets = offsets
        self.pending = pending
        self.errors = errors
        self.delivered = 0
        self.letters = 0
        self.failure: KafkaError | None = None

    def prediction_done(self, err: KafkaError | None, _msg: Message) -> None:
        self.pending -= 1
        if err is None:
            self.delivered += 1
        else:
            self.failure = err

    def letter_done(self, err: KafkaError | None, _msg: Message) -> None:
        self.pending -= 1
        if err is None:
            self.letters += 1
        else:
            self.failure = err


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
    ) -> None:
        self.settings = settings
        self.adapter = model if isinstance(model, ModelAdapter) else ModelAdapter(model)
        self.version = version
        self.config = config or WorkerConfig()
        self.group_id = self.config.group_for(version)
        self.metrics = metrics or WorkerMetrics(model=self.config.name, version=version)
        self.codec = codec or Codec()
        self._inflight: deque[_InFlight] = deque()
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._failure: str | None = None

    # -- configuration ---------------------------------------------------------------------
    def consumer_config(self) -> dict[str, Any]:
        session = self.config.session_timeout_ms
        return self.settings.confluent_config(
            **{
                "group.id": self.group_id,
                "client.id": f"{self.group_id}-consumer",
                "enable.auto.commit": True,
                "auto.commit.interval.ms": 1000,
                "enable.auto.offset.store": False,
                "auto.offset.reset": self.config.start,
                "session.timeout.ms": session,
                "heartbeat.interval.ms": max(min(3000, session // 3), 100),
                "partition.assignment.strategy": "cooperative-sticky",
                **self.config.consumer_overrides,
            }
        )

    def producer_config(self) -> dict[str, Any]:
        return self.settings.confluent_config(
            **{
                "client.id": f"{self.group_id}-producer",
                "partitioner": "murmur2_random",
                "enable.idempotence": True,
                "linger.ms": 5,
                "batch.num.messages": 10_000,
                "compression.type": "none",
                "queue.buffering.max.messages": 1_000_000,
                **self.config.producer_overrides,
            }
        )

    def check_topics(self) -> None:
        """Raise :class:`~streams.topics.TopicError` unless the worker's topics exist."""
        topics = self.settings.topics
        needed = {topics.inputs, topics.shadow_predictions, topics.dlq}
        missing = [
            s.name
            for s in describe_topics(self.settings)
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
        consumer = self._consumer = Consumer(self.consumer_config())
        self._producer = Producer(self.producer_config())
        consumer.subscribe(
            [self.settings.topics.inputs],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        batch_size, batch_timeout = self.config.batch_size, self.config.batch_ms / 1000.0
        next_lag = next_status = time.monotonic()
        try:
            while not stop.is_set() and self._failure is None:
                messages = consumer.consume(batch_size, batch_timeout)
                if messages:
                    self._process(messages)
                self._producer.poll(0)
                self._settle()
                now = time.monotonic()
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
        if self._failure is not None:
            raise WorkerError(self._failure)
        return self.metrics

    def _process(self, messages: list[Message]) -> None:
        started = time.perf_counter()
        metrics = self.metrics
        metrics.consumed += len(messages)
        batch = assemble(
            messages,
            self.codec,
            model_name=self.config.only_model,
            required_for=self.adapter.required_features,
        )
        for error in batch.errors:
            log.warning("consumer error: %s", error)
        metrics.skipped += batch.skipped
        outcomes = self.adapter.predict(batch.inputs)
        errors = sum(1 for outcome in outcomes if outcome.error is not None)
        flight = _InFlight(batch.next_offsets, len(outcomes) + len(batch.rejects), errors)
        self._inflight.append(flight)
        produce, encode, on_delivery = self._produce, self.codec.encode, flight.prediction_done
        topic, version, shadow = self.settings.topics.shadow_predictions, self.version, Role.SHADOW
        now_ms = int(time.time() * 1000)
        for record, outcome in zip(batch.inputs, outcomes, strict=True):
            prediction = Prediction(
                record.request_id,
                record.model,
                version,
                shadow,
                now_ms,
                outcome.value,
                outcome.probabilities,
                outcome.latency_ms,
                outcome.error,
                record.segments,
            )
            try:
                data = encode(prediction)
            except EncodeError as exc:
                flight.errors += outcome.error is None
                data = encode(Prediction(
                    record.request_id, record.model, version, shadow, now_ms,
                    latency_ms=outcome.latency_ms, error=f"unencodable output: {exc}",
                    segments=record.segments,
                ))  # fmt: skip
            produce(topic, data, record.request_id.encode(), on_delivery)
        for reject in batch.rejects:
            self._dead_letter(reject, flight)
        metrics.observe_batch(time.perf_counter() - started)

    def _produce(self, topic: str, value: bytes, key: bytes | None, on_delivery: Any) -> None:
        producer = self._producer
        assert producer is not None
        while True:
            try:
                producer.produce(topic, value, key, PARTITION_ANY, on_delivery)
                return
            except BufferError:  # local queue full: let deliveries drain
                producer.poll(0.05)

    def _dead_letter(self, reject: Reject, flight: _InFlight) -> None:
        letter = dead_letter(
            reject.message, component="worker", error_type=reject.error_type, reason=reject.reason
        )
        log.debug("dead letter %s[%s]@%s: %s", letter.source_topic,
                  letter.source_partition, letter.source_offset, letter.reason)  # fmt: skip
        topic = self.settings.topics.dlq
        producer = self._producer
        assert producer is not None
        while True:
            try:
                send_dead_letter(producer, topic, letter, self.codec, flight.letter_done)
                return
            except BufferError:
                producer.poll(0.05)
            except KafkaException as exc:  # e.g. the original value is too large to forward
                if letter.value is None:
                    raise
                reason = f"{letter.reason} (value of {len(letter.value)} bytes not kept: {exc})"
                letter = replace(letter, value=None, reason=reason)

    # -- delivery and offsets --------------------------------------------------------------
    def _settle(self) -> None:
        """Store the offsets of every fully delivered batch at the head of the queue."""
        inflight, metrics = self._inflight, self.metrics
        done: dict[tuple[str, int], int] = {}
        while inflight and inflight[0].pending == 0:
            flight = inflight[0]
            if flight.failure is not None:
                if self._failure is None:
                    metrics.delivery_failures += 1
                    self._failure = f"delivery failed, not committing past it: {flight.failure}"
                    log.error(self._failure)
                break
            inflight.popleft()
            metrics.produced += flight.delivered
            metrics.dead_lettered += flight.letters
            metrics.errors += flight.errors
            done.update(flight.offsets)
        if done and self._consumer is not None:
            offsets = [TopicPartition(t, p, o) for (t, p), o in done.items()]
            try:
                self._consumer.store_offsets(offsets=offsets)
            except KafkaException as exc:  # partitions revoked or lost meanwhile
                log.debug("cannot store offsets %s: %s", offsets, exc)

    def _flush(self) -> None:
        if self._producer is not None:
            remaining = self._producer.flush(self.config.drain_timeout)
            if remaining:
                log.warning("%d messages still undelivered after %.0fs", remaining,
                            self.config.drain_timeout)  # fmt: skip
        self._settle()

    def _commit(self) -> None:
        if self._consumer is None:
            return
        try:
            self._consumer.commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:
                log.warning("commit failed: %s", exc)

    def _drain(self) -> None:
        self._flush()
        self._commit()

    # -- rebalances ------------------------------------------------------------------------
    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("assigned %s", _describe(partitions))

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("revoked %s; delivering and committing first", _describe(partitions))
        self._drain()

    def _on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.warning("lost %s; their uncommitted inputs will be redelivered to others",
                    _describe(partitions))  # fmt: skip
        lost = {(tp.topic, tp.partition) for tp in partitions}
        for flight in self._inflight:
            for key in lost & flight.offsets.keys():
                del flight.offsets[key]

    def _update_lag(self) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        try:
            assignment = consumer.assignment()
            lag = 0
            for tp in consumer.position(assignment) if assignment else []:
                low, high = consumer.get_watermark_offsets(tp, cached=True)
                if high < 0:
                    continue
                start = tp.offset if tp.offset >= 0 else max(low, 0)
                lag += max(high - start, 0)
            self.metrics.lag = lag
        except KafkaException as exc:
            log.debug("cannot compute lag: %s", exc)


def _describe(partitions: list[TopicPartition]) -> str:
    by_topic: dict[str, list[int]] = {}
    for tp in partitions:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    return ", ".join(f"{t}{sorted(p)}" for t, p in by_topic.items()) or "nothing"
