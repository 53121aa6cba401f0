"""One Kafka transaction per batch: outputs, state changes and input offsets, or nothing.

Join stage 1 runs each batch as a :class:`TransactionalBatch`, in numbered steps:

1. :meth:`~TransactionalBatch.begin` opens the producer's transaction.
2. :meth:`~TransactionalBatch.produce` queues the batch's records in it (join events,
   changelog records of the state changes, dead letters), waiting out a full queue.
   The caller applies the same state changes to its local store meanwhile.
3. :meth:`~TransactionalBatch.commit` adds the consumed input offsets to the
   transaction (``send_offsets_to_transaction``, as the consumer group's) and
   commits it: outputs, changelog and offsets become visible together.
4. A retriable failure of step 3 (a timeout: the broker or the cluster is away) repeats
   it, with a growing pause, until it goes through or turns abortable or fatal: librdkafka
   goes on with a timed-out call in the background, and until the same call is made
   again every other transactional call, ``abort_transaction`` among them, fails with a
   retriable ``_CONFLICT``. The broker ends the wait: past ``transaction.timeout.ms`` it
   aborts the transaction and the producer is fenced. An abortable failure (a broker
   restart, a fenced epoch after a rebalance) aborts the transaction and calls
   ``rewind``, which must bring the local store back to the changelog and seek the
   consumer back to the committed offsets: the batch is redone, never lost. An abort
   that times out is repeated the same way. A fatal one is raised: :class:`Fenced` when
   this producer was fenced (it was a zombie, frozen past its transaction timeout while
   another process took over), lost its transaction state with a killed coordinator, or
   finds another transactional call still pending.

Steps 3 and 4 run under a :class:`~streams.kafka.watchdog.Watchdog`: librdkafka's
transaction calls can block past their own timeout when the group coordinator goes
away (confluentinc/librdkafka#5456, #5511), and only a restart unblocks them.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException

from streams.kafka.clients import ConsumerLike, topic_partitions
from streams.kafka.producer import PARTITION_ANY, ProducerWrapper

__all__ = ["COMMIT_TIMEOUT_S", "Fenced", "Guard", "TransactionalBatch"]

log = logging.getLogger(__name__)

COMMIT_TIMEOUT_S = 10.0
"""How long one commit or abort call waits before it is made again."""
RETRY_PAUSE_S = 0.1
MAX_RETRY_PAUSE_S = 5.0
"""The pause before a call is made again doubles from the first to the last: a call that
fails at once must not spin."""


FENCED_CODES = frozenset({
    KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH,
    KafkaError.INVALID_TXN_STATE,
})  # fmt: skip


class Fenced(KafkaException):
    """The transactional producer cannot go on: it was fenced (its process was a zombie,
    frozen or cut off past its transaction timeout, and the coordinator aborted its
    transaction), its transaction state was lost with a coordinator killed mid-commit
    (``INVALID_TXN_STATE``), or another transactional call is still pending
    (``_CONFLICT``). Nothing it had not committed is visible; the process must
    start over from Kafka (the join's CLI restarts it in place)."""


def _cannot_go_on(error: KafkaError) -> bool:
    """A fatal error, or another transactional call still pending: librdkafka answers
    ``_CONFLICT`` (retriable, but no retry of this call ends it)."""
    return bool(error.fatal()) or error.code() == KafkaError._CONFLICT


def _fatal(exc: KafkaException) -> KafkaException:
    """``exc`` itself, or as :class:`Fenced` when it says the producer cannot go on."""
    error = exc.args[0]
    fenced = error.code() in FENCED_CODES or error.code() == KafkaError._CONFLICT
    return Fenced(error) if fenced else exc


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
        timeout_s: float = COMMIT_TIMEOUT_S,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        self.producer = producer
        self.consumer = consumer
        self.watchdog = watchdog
        self.rewind = rewind
        self.timeout_s = timeout_s
        self.sleep = sleep
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
        ``(topic, partition)``); False when it was aborted and rewound instead.

        A call that times out is made again, the same call, until the broker answers.
        """
        unsent = dict(offsets)  # emptied once they are in the transaction
        client = self.producer.client
        try:
            for attempt in itertools.count(1):
                try:
                    with self.watchdog.guard("committing a transaction"):
                        if unsent:
                            client.send_offsets_to_transaction(
                                topic_partitions(unsent),
                                self.consumer.consumer_group_metadata(),
                                self.timeout_s,
                            )
                            unsent = {}
                        client.commit_transaction(self.timeout_s)
                    self.committed += 1
                    return True
                except KafkaException as exc:
                    error = exc.args[0]
                    if _cannot_go_on(error):
                        log.error("transaction failed, stopping: %s", error)
                        raise _fatal(exc) from exc
                    if not error.retriable() or error.txn_requires_abort():
                        log.warning("transaction aborted (%s); redoing it", error)
                        break
                    log.warning("committing a transaction (attempt %d): %s", attempt, error)
                    self._pause(attempt)
            self.abort()
            return False
        finally:
            self.open = False

    def abort(self) -> None:
        """Abort the open transaction and rewind (step 4).

        An abort that times out (the cluster is down) is made again until the cluster
        answers: the batch waits out the outage instead of stopping the process.
        """
        for attempt in itertools.count(1):
            try:
                with self.watchdog.guard("aborting a transaction"):
                    self.producer.client.abort_transaction(self.timeout_s)
                break
            except KafkaException as exc:
                error = exc.args[0]
                if _cannot_go_on(error):
                    raise _fatal(exc) from exc
                if not error.retriable():
                    raise
                log.warning("aborting a transaction (attempt %d): %s", attempt, error)
                self._pause(attempt)
        self.open = False
        self.aborted += 1
        self.rewind()

    def _pause(self, attempt: int) -> None:
        self.sleep(min(RETRY_PAUSE_S * 2 ** min(attempt - 1, 10), MAX_RETRY_PAUSE_S))
