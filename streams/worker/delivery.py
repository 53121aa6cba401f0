"""The worker's at-least-once rule: an input's offset is stored once its outputs are delivered.

The loop (:mod:`streams.worker.loop`) produces a micro-batch's predictions and dead
letters and goes on scoring, without waiting on the broker. The micro-batch waits here
(:class:`InFlight`) with the offsets it unlocks. The batches in flight are *settled*
together whenever the producer's queue is empty, and at least every ``SETTLE_EVERY_S`` by
a flush: their outputs are counted and their offsets stored (``store_offsets``; with
``enable.auto.offset.store=false`` librdkafka's auto-commit commits stored offsets only).
A record that finally fails delivery stops the worker (:attr:`Deliveries.failure`) with
nothing after it stored, so a restart re-reads it. Apart from the loop so that this rule
reads in one place.
"""

from __future__ import annotations

import logging
import time
from collections import deque

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from streams.kafka import ConsumerLike, ProducerWrapper
from streams.worker.metrics import WorkerMetrics

__all__ = ["SETTLE_EVERY_S", "SETTLE_FLUSH_S", "Deliveries", "InFlight"]

log = logging.getLogger("streams.worker")
SETTLE_EVERY_S = 1.0
"""Deliveries are waited for (a flush) at least this often when the queue never empties."""
SETTLE_FLUSH_S = 5.0


class InFlight:
    """One micro-batch's outputs awaiting delivery and the offsets they unlock."""

    __slots__ = ("errors", "letters", "offsets", "predictions")

    def __init__(
        self, offsets: dict[tuple[str, int], int], predictions: int, letters: int, errors: int
    ) -> None:
        self.offsets = offsets
        self.predictions = predictions
        self.letters = letters
        self.errors = errors


class Deliveries:
    """The micro-batches in flight, and why the worker must stop if a delivery failed.

    Parameters
    ----------
    metrics
        Where the delivered outputs and the delivery failures are counted.
    drain_timeout
        How long :meth:`drain` waits for the outputs in flight (a warning past it).
    """

    def __init__(self, metrics: WorkerMetrics, drain_timeout: float) -> None:
        self.metrics = metrics
        self.drain_timeout = drain_timeout
        self.inflight: deque[InFlight] = deque()
        self.failure: str | None = None
        """Set when a delivery failed for good: the worker stops, committing nothing after it."""
        self.settle_due = 0.0
        """When a flush is due if the producer's queue has not emptied (``time.monotonic``)."""

    def add(
        self, offsets: dict[tuple[str, int], int], predictions: int, letters: int, errors: int
    ) -> InFlight:
        """A micro-batch just produced: ``offsets`` are stored once its outputs are delivered."""
        flight = InFlight(offsets, predictions, letters, errors)
        self.inflight.append(flight)
        return flight

    def forget(self, lost: set[tuple[str, int]]) -> None:
        """Store nothing for partitions lost meanwhile (their new owner re-reads them)."""
        for flight in self.inflight:
            for key in lost & flight.offsets.keys():
                del flight.offsets[key]

    def settle(
        self,
        producer: ProducerWrapper | None,
        consumer: ConsumerLike | None,
        now: float,
        timeout: float | None = None,
    ) -> None:
        """Store the offsets of the batches in flight once all their outputs are delivered.

        They are when the producer's queue is empty; when it never empties (a steady
        stream), every SETTLE_EVERY_S the loop waits for it (a flush, ``timeout`` s at
        most). A failed delivery stops the worker, nothing after it committed.
        """
        inflight = self.inflight
        if producer is None or not inflight or self._failed(producer):
            return
        if not producer.settled():
            if timeout is None:
                if now < self.settle_due:
                    return
                timeout = SETTLE_FLUSH_S
            remaining = producer.flush(timeout)
            if self._failed(producer) or remaining:
                if remaining and timeout >= self.drain_timeout:
                    log.warning("%d messages still undelivered after %.0fs", remaining, timeout)
                return
        self.settle_due = now + SETTLE_EVERY_S
        metrics = self.metrics
        done: dict[tuple[str, int], int] = {}
        for flight in inflight:
            metrics.produced += flight.predictions
            metrics.dead_lettered += flight.letters
            metrics.errors += flight.errors
            done.update(flight.offsets)
        inflight.clear()
        if done and consumer is not None:
            offsets = [TopicPartition(t, p, o) for (t, p), o in done.items()]
            try:
                consumer.store_offsets(offsets=offsets)
            except KafkaException as exc:  # partitions revoked or lost meanwhile
                log.debug("cannot store offsets %s: %s", offsets, exc)

    def drain(self, producer: ProducerWrapper | None, consumer: ConsumerLike | None) -> None:
        """Deliver, store and commit everything in flight (before partitions go, at a stop)."""
        self.settle(producer, consumer, time.monotonic(), self.drain_timeout)
        if consumer is None:
            return
        try:
            consumer.commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:
                log.warning("commit failed: %s", exc)

    def _failed(self, producer: ProducerWrapper) -> bool:
        if not producer.failed:
            return False
        if self.failure is None:
            self.metrics.delivery_failures += 1
            self.failure = f"delivery failed, not committing past it: {producer.last_failure}"
            log.error(self.failure)
        return True
