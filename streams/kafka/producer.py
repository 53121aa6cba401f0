"""One producer wrapper: back-pressure, delivery accounting and quiet error logs.

Every shadow-eval component that writes to Kafka (the hook's sender thread, the shadow
worker, both join stages) produces through a :class:`ProducerWrapper`:

- **Back-pressure.** :meth:`ProducerWrapper.produce` waits out a full local queue
  (librdkafka's ``BufferError``): it serves delivery reports with ``poll`` and retries,
  so a burst slows the caller down instead of failing it. :meth:`ProducerWrapper.offer`
  never waits: it says whether the record was queued (the hook drops and counts).
- **Delivery accounting.** Successful deliveries raise no Python callback per record
  (``delivery.report.only.error``: one would cost more than the rest of the per-record
  work); :attr:`~ProducerWrapper.failed` counts failures and :attr:`~ProducerWrapper.delivered`
  is *produced - failed - still queued*, exact once the queue is empty and never an
  over-count before. :meth:`ProducerWrapper.settled` says when everything produced so far
  is delivered or failed.
- **Size limit.** :attr:`~ProducerWrapper.max_bytes` is the client's ``message.max.bytes``
  (:mod:`streams.kafka.limits`): callers check what they derive from consumed bytes.
- **Quiet logs.** Delivery failures and client errors are logged at most once a minute
  per kind (a broker outage makes thousands), with how many were suppressed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from confluent_kafka import KafkaError, Message

from streams.kafka.clients import CONFLUENT, KafkaClients, ProducerLike
from streams.kafka.limits import message_max_bytes
from streams.kafka.logs import RateLimitedLog

__all__ = ["BACKOFF_S", "DeliveryCallback", "ProducerWrapper"]

DeliveryCallback = Callable[[KafkaError | None, Message], None]
BACKOFF_S = 0.05
"""How long :meth:`ProducerWrapper.produce` serves deliveries before retrying a full queue."""
WAIT_LOG_S = 5.0
PARTITION_ANY = -1


class ProducerWrapper:
    """A librdkafka producer with back-pressure and delivery accounting.

    Parameters
    ----------
    config
        librdkafka settings (:mod:`streams.kafka.config`); the wrapper adds its own
        ``on_delivery``, ``error_cb`` and ``delivery.report.only.error``.
    log
        Where delivery failures and client errors go (rate-limited).
    ratelog
        Instead of ``log``: the rate-limited log to write to (shared with the caller).
    on_failure
        Called with every failed delivery (after it is counted); it then reports the
        failure itself, the wrapper does not log it.
    prefix
        Starts every line the wrapper logs (``"shadow hook: "``).
    clients
        The client factory (an in-process fake in unit tests).

    Examples
    --------
    >>> producer = ProducerWrapper({"bootstrap.servers": "127.0.0.1:9"})
    >>> producer.offer("shadow.inputs", b"v", b"k")
    True
    >>> producer.produced, producer.failed, producer.settled()
    (1, 0, False)
    >>> producer.purge()
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        *,
        log: logging.Logger | None = None,
        ratelog: Any = None,
        on_failure: DeliveryCallback | None = None,
        prefix: str = "",
        clients: KafkaClients = CONFLUENT,
    ) -> None:
        self.ratelog = ratelog or RateLimitedLog(log or logging.getLogger("streams.kafka"))
        self.produced = 0
        self.failed = 0
        self.last_failure: KafkaError | None = None
        self._on_failure = on_failure
        self._prefix = prefix
        self._delivered = 0
        self.max_bytes = message_max_bytes(config)
        """The client's ``message.max.bytes``: larger records raise (see kafka.limits)."""
        self.client: ProducerLike = clients.producer(
            {
                **config,
                "delivery.report.only.error": True,
                "on_delivery": self._on_delivery,
                "error_cb": self._on_error,
            }
        )
        self._produce = self.client.produce

    # -- producing -------------------------------------------------------------------
    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        partition: int = PARTITION_ANY,
        on_delivery: DeliveryCallback | None = None,
    ) -> None:
        """Queue one record, waiting (serving deliveries) while the local queue is full.

        ``on_delivery`` is called on failure only. ``KafkaException`` (a record over the
        size limit, an unknown partition) propagates.
        """
        try:
            if on_delivery is None:
                self._produce(topic, value, key, partition)
            else:
                self._produce(topic, value, key, partition, on_delivery)
        except BufferError:
            self._produce_when_room(topic, value, key, partition, on_delivery)
        self.produced += 1

    def produce_all(self, topic: str, records: Iterable[tuple[bytes | None, bytes | None]]) -> int:
        """Queue ``(value, key)`` records in order (as :meth:`produce`); returns how many."""
        produce, count = self._produce, 0
        for value, key in records:
            try:
                produce(topic, value, key)
            except BufferError:
                self._produce_when_room(topic, value, key, PARTITION_ANY, None)
            count += 1
        self.produced += count
        return count

    def offer(self, topic: str, value: bytes | None, key: bytes | None = None) -> bool:
        """Queue one record unless the local queue is full (then False, nothing waits)."""
        try:
            self._produce(topic, value, key)
        except BufferError:
            return False
        self.produced += 1
        return True

    def _produce_when_room(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        partition: int,
        on_delivery: DeliveryCallback | None,
    ) -> None:
        started = time.monotonic()
        client = self.client
        while True:
            client.poll(BACKOFF_S)
            try:
                if on_delivery is None:
                    client.produce(topic, value, key, partition)
                else:
                    client.produce(topic, value, key, partition, on_delivery)
                return
            except BufferError:
                waited = time.monotonic() - started
                if waited >= WAIT_LOG_S:
                    self.ratelog.warning(
                        "full", "%sproducer queue full for %.0fs (%d queued); waiting",
                        self._prefix, waited, len(client),
                    )  # fmt: skip

    # -- deliveries ------------------------------------------------------------------
    def poll(self, timeout: float = 0.0) -> int:
        """Serve delivery reports (failures) and client errors."""
        return self.client.poll(timeout)

    def flush(self, timeout: float) -> int:
        """Wait up to ``timeout`` s for every queued record; returns how many remain."""
        return self.client.flush(timeout)

    def purge(self) -> None:
        """Drop what is queued and not yet sent (those count as failed once reported)."""
        self.client.purge()
        self.client.flush(0)

    def __len__(self) -> int:
        return len(self.client)

    def settled(self) -> bool:
        """Whether every record produced so far is delivered or failed (reported)."""
        return len(self.client) == 0

    @property
    def delivered(self) -> int:
        """Records delivered: exact once :meth:`settled`, never an over-count before."""
        queued = len(self.client)  # read first: a report served in between only lowers it
        delivered = self.produced - self.failed - queued
        if delivered > self._delivered:
            self._delivered = delivered
        return self._delivered

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            return
        self.failed += 1
        self.last_failure = err
        if self._on_failure is not None:
            self._on_failure(err, msg)
            return
        self.ratelog.warning(
            "delivery", "%sdelivery to %s failed: %s", self._prefix, msg.topic(), err.str()
        )

    def _on_error(self, err: KafkaError) -> None:
        self.ratelog.warning("kafka", "%sKafka client error: %s", self._prefix, err.str())

    # -- transactions (join stage 1; see streams.kafka.transaction) -----------------------
    def init_transactions(self, timeout: float) -> None:
        self.client.init_transactions(timeout)
