"""One Kafka transaction per batch: outputs, state changes and input offsets, or nothing.

Join stage 1 runs each batch as a :class:`TransactionalBatch`, in numbered steps:

1. :meth:`~TransactionalBatch.begin` opens the producer's transaction.
2. :meth:`~TransactionalBatch.produce` queues the batch's records in it (join events,
   changelog records of the state changes, dead letters), waiting out a full queue.
   The caller applies the same state changes to its local store meanwhile.
3. :meth:`~TransactionalBatch.commit` adds the consumed input offsets to the
   transaction (``send_offsets_to_transaction``, as the consumer group's) and
   commits it: outputs, changelog and offsets become visible together.
4. A retriable failure of step 3 repeats it (up to ``attempts`` times); an abortable
   one (a broker restart, a fenced epoch after a rebalance) aborts the transaction and
   calls ``rewind``, which must bring the local store back to the changelog and seek
   the consumer back to the committed offsets: the batch is redone, never lost. An
   abort that times out (the whole cluster down) is retried until it goes through. A
   fatal one is raised: :class:`Fenced` when this producer was fenced (it was a zombie,
   frozen past its transaction timeout while another process took over) or lost its
   transaction state with a killed coordinator.

Steps 3 and 4 run under a :class:`~streams.kafka.watchdog.Watchdog`: librdkafka's
transaction calls can block past their own timeout when the group coordinator goes
away (confluentinc/librdkafka#5456, #5511), and only a restart unblocks them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException

from streams.kafka.clients import ConsumerLike, topic_partitions
from streams.kafka.producer import PARTITION_ANY, ProducerWrapper

__all__ = ["COMMIT_ATTEMPTS", "COMMIT_TIMEOUT_S", "Fenced", "Guard", "TransactionalBatch"]

log = logging.getLogger(__name__)

COMMIT_TIMEOUT_S = 10.0
COMMIT_ATTEMPTS = 6
"""A commit that keeps failing for a minute is aborted and the batch redone."""


FENCED_CODES = frozenset({
    KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH,
    KafkaError.INVALID_TXN_STATE,
})  # fmt: skip


class Fenced(KafkaException):
    """The transactional producer cannot go on: it was fenced (its process was a zombie,
    frozen or cut off past its transaction timeout, and the coordinator aborted its
    transaction) or its transaction state was lost with a coordinator killed mid-commit
    (``INVALID_TXN_STATE``). Nothing it had not committed is visible; the process must
    start over from Kafka (the join's CLI restarts it in place)."""


def _fatal(exc: KafkaException) -> KafkaException:
    """``exc`` itself, or as :class:`Fenced` when it says the producer was fenced."""
    error = exc.args[0]
    return Fenced(error) if error.code() in FENCED_CODES else exc


class Guard(Protocol):
    """Watches a blocking call (:class:`~streams.kafka.watchdog.Watchdog` fits)."""

    def guard(self, what: str) -> AbstractContextManager[None]: ...


class TransactionalBatch:
    """Runs batches as transactions of ``producer``, offsets of ``consumer``'s group.

    Parameters
    ----------
    producer
        A transactional :class:`~streams.kafka.producer.ProducerWrapper`
        (:func:`streams.kafka.config.transactional_config`).
    consumer
        The consumer whose group's offsets go into each transaction.
    watchdog
        Guards the calls that may block forever.
    rewind
        Called after an abort: restore the state and seek back (step 4).

    Examples
    --------
    >>> batch = TransactionalBatch(producer, consumer, watchdog, rewind)  # doctest: +SKIP
    >>> batch.begin()  # doctest: +SKIP
    >>> batch.produce("shadow.join.events", value, key, partition)  # doctest: +SKIP
    >>> batch.commit({("shadow.predictions.live", 0): 1042})  # doctest: +SKIP
    True
    """

    def __init__(
        self,
        producer: ProducerWrapper,
        consumer: ConsumerLike,
        watchdog: Guard,
        rewind: Callable[[], Any],
        *,
        attempts: int = COMMIT_ATTEMPTS,
        timeout_s: float = COMMIT_TIMEOUT_S,
    ) -> None:
        self.producer = producer
        self.consumer = consumer
        self.watchdog = watchdog
        self.rewind = rewind
        self.attempts = attempts
        self.timeout_s = timeout_s
        self.open = False
        self.committed = 0
        self.aborted = 0

    def init(self, timeout_s: float = 30.0) -> None:
        """Register the transactional id (fencing an older producer of it)."""
        self.producer.init_transactions(timeout_s)

    # 1.
    def begin(self) -> None:
        """Open a transaction."""
        self.producer.client.begin_transaction()
        self.open = True

    # 2.
    def produce(
        self, topic: str, value: bytes | None, key: bytes | None, partition: int = PARTITION_ANY
    ) -> None:
        """Queue a record in the open transaction (waits while the local queue is full)."""
        self.producer.produce(topic, value, key, partition)

    # 3. and 4.
    def commit(self, offsets: Mapping[tuple[str, int], int]) -> bool:
        """Commit the open transaction with the input ``offsets`` (next offset to read per
        ``(topic, partition)``); False when it was aborted and rewound instead."""
        try:
            for attempt in range(1, self.attempts + 1):
                try:
                    with self.watchdog.guard("committing a transaction"):
                        self._commit_once(offsets)
                    self.committed += 1
                    return True
                except KafkaException as exc:
                    error = exc.args[0]
                    if error.fatal():
                        log.error("transaction failed, stopping: %s", error)
                        raise _fatal(exc) from exc
                    if error.retriable() and not error.txn_requires_abort():
                        log.warning("committing a transaction (attempt %d): %s", attempt, error)
                        continue
                    log.warning("transaction aborted (%s); redoing it", error)
                    break
            self.abort()
            return False
        finally:
            self.open = False

    def abort(self) -> None:
        """Abort the open transaction and rewind (step 4).

        An abort that times out (the cluster is down) is retried until the cluster
        answers: the batch waits out the outage instead of stopping the process.
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                with self.watchdog.guard("aborting a transaction"):
                    self.producer.client.abort_transaction(self.timeout_s)
                break
            except KafkaException as exc:
                error = exc.args[0]
                if error.fatal():
                    raise _fatal(exc) from exc
                if not error.retriable():
                    raise
                log.warning("aborting a transaction (attempt %d): %s", attempt, error)
        self.open = False
        self.aborted += 1
        self.rewind()

    def _commit_once(self, offsets: Mapping[tuple[str, int], int]) -> None:
        client = self.producer.client
        if offsets:
            client.send_offsets_to_transaction(
                topic_partitions(offsets),
                self.consumer.consumer_group_metadata(),
                self.timeout_s,
            )
        client.commit_transaction(self.timeout_s)
