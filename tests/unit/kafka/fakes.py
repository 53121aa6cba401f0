"""An in-process fake of the Kafka layer's client interface (:mod:`streams.kafka.clients`).

One :class:`FakeBroker` holds topics as lists of records per partition, consumer groups'
committed offsets and open transactions; :class:`FakeClients` makes consumers, producers
and admin clients on it, as ``streams.kafka.CONFLUENT`` makes real ones. Enough of
librdkafka's behaviour for the loops' unit tests: a bounded local producer queue
(``BufferError``), delivery on ``poll``/``flush`` (failures injected per topic),
transactions whose records and offsets appear together on commit, end-of-partition
events, subscriptions assigned every partition on the first ``consume``, records deleted
below a log start (an offset-reset event for a consumer sent below it). The real broker
stays in the integration tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from streams.topics import partition_of

OFFSET_BEGINNING = -2
OFFSET_INVALID = -1001


class FakeError:
    """A ``KafkaError`` look-alike: ``code()``, ``str()`` and the transaction flags."""

    def __init__(
        self,
        code: int,
        text: str = "",
        *,
        fatal: bool = False,
        retriable: bool = False,
        abort: bool = False,
    ) -> None:
        self._code, self._text = code, text or f"error {code}"
        self._fatal, self._retriable, self._abort = fatal, retriable, abort

    def code(self) -> int:
        return self._code

    def str(self) -> str:
        return self._text

    def fatal(self) -> bool:
        return self._fatal

    def retriable(self) -> bool:
        return self._retriable

    def txn_requires_abort(self) -> bool:
        return self._abort

    def __repr__(self) -> str:
        return f"FakeError({self._text!r})"


@dataclass
class FakeMessage:
    _topic: str
    _partition: int
    _offset: int
    _key: bytes | None = None
    _value: bytes | None = None
    _error: Any = None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def error(self) -> Any:
        return self._error


@dataclass
class FakeBroker:
    """Topics, groups' committed offsets, and the faults to inject."""

    partitions: int = 3
    topics: dict[str, list[list[tuple[bytes | None, bytes | None]]]] = field(default_factory=dict)
    committed: dict[str, dict[tuple[str, int], int]] = field(default_factory=dict)
    failing_topics: set[str] = field(default_factory=set)
    """Deliveries to these topics fail."""
    offsets_errors: list[FakeError] = field(default_factory=list)
    """Raised, one per call, by the next ``send_offsets_to_transaction`` calls."""
    commit_errors: list[FakeError] = field(default_factory=list)
    """Raised, one per call, by the next ``commit_transaction`` calls."""
    abort_errors: list[FakeError] = field(default_factory=list)
    """Raised, one per call, by the next ``abort_transaction`` calls."""
    max_value_bytes: int = 1_000_000
    log_start: dict[tuple[str, int], int] = field(default_factory=dict)
    """A partition's first offset still held (``delete_records``, retention)."""

    def create(self, *names: str) -> None:
        for name in names:
            self.topics.setdefault(name, [[] for _ in range(self.partitions)])

    def append(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int = -1
    ) -> int:
        if partition < 0:
            partition = partition_of(key or b"", self.partitions)
        self.topics[topic][partition].append((key, value))
        return partition

    def delete_records(self, topic: str, partition: int, before: int) -> None:
        """Move the partition's log start to ``before``, as ``delete_records`` does."""
        where = (topic, partition)
        self.log_start[where] = max(self.log_start.get(where, 0), before)

    def start(self, topic: str, partition: int) -> int:
        return self.log_start.get((topic, partition), 0)

    def records(self, topic: str) -> list[tuple[bytes | None, bytes | None]]:
        """Every record of ``topic``, partition by partition."""
        return [record for log in self.topics.get(topic, []) for record in log]

    def metadata(self) -> Any:
        topics = {
            name: _Obj(partitions={p: None for p in range(len(logs))}, error=None)
            for name, logs in self.topics.items()
        }
        return _Obj(topics=topics, brokers={1: None})


class _Obj:
    def __init__(self, **attributes: Any) -> None:
        self.__dict__.update(attributes)


class FakeClients:
    """A :class:`~streams.kafka.KafkaClients` on one :class:`FakeBroker`."""

    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker
        self.consumers: list[FakeConsumer] = []
        self.producers: list[FakeProducer] = []

    def consumer(self, config: Mapping[str, Any]) -> FakeConsumer:
        consumer = FakeConsumer(self.broker, dict(config))
        self.consumers.append(consumer)
        return consumer

    def producer(self, config: Mapping[str, Any]) -> FakeProducer:
        producer = FakeProducer(self.broker, dict(config))
        self.producers.append(producer)
        return producer

    def admin(self, config: Mapping[str, Any]) -> FakeAdmin:
        return FakeAdmin(self.broker)


class FakeAdmin:
    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        return self.broker.metadata()

    def describe_topics(self, topics: Any, **kwargs: Any) -> Any:
        return {name: _Done(_Obj(topic_id=f"id-{name}")) for name in topics.topic_names}


class _Done:
    def __init__(self, value: Any) -> None:
        self.value = value

    def result(self, timeout: float | None = None) -> Any:
        return self.value


class FakeConsumer:
    def __init__(self, broker: FakeBroker, config: dict[str, Any]) -> None:
        self.broker = broker
        self.group = str(config.get("group.id", ""))
        self.eof = bool(config.get("enable.partition.eof", False))
        self.latest = config.get("auto.offset.reset") == "latest"
        self.positions: dict[tuple[str, int], int] = {}
        self.stored: dict[tuple[str, int], int] = {}
        self._at_eof: set[tuple[str, int]] = set()
        self._subscribed: list[str] | None = None
        self._callbacks: dict[str, Callable[..., None]] = {}
        self.paused: set[tuple[str, int]] = set()
        self.closed = False
        self.member: str | None = None
        self._leaving = False

    # -- assignment -------------------------------------------------------------------
    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self._subscribed = list(topics)
        self._callbacks = callbacks

    def _join(self) -> None:
        assert self._subscribed is not None
        partitions = [
            TopicPartition(t, p)
            for t in self._subscribed
            for p in range(len(self.broker.topics[t]))
        ]
        committed = self.broker.committed.get(self.group, {})
        for tp in partitions:
            where = (tp.topic, tp.partition)
            size = len(self.broker.topics[tp.topic][tp.partition])
            start = size if self.latest else self.broker.start(*where)
            self.positions[where] = committed.get(where, start)
        self._subscribed = None
        self.member = f"{self.group}-member"
        if "on_assign" in self._callbacks:
            self._callbacks["on_assign"](self, partitions)

    def revoke(self) -> None:
        """As a rebalance taking every partition away (callbacks run, then nothing owned)."""
        partitions = self.assignment()
        if "on_revoke" in self._callbacks:
            self._callbacks["on_revoke"](self, partitions)
        self.positions.clear()

    def assign(self, partitions: list[TopicPartition]) -> None:
        self._subscribed = None
        self.positions = {}
        committed = self.broker.committed.get(self.group, {})
        for tp in partitions:
            where = (tp.topic, tp.partition)
            size = len(self.broker.topics[tp.topic][tp.partition])
            offset = tp.offset
            if offset == OFFSET_INVALID:  # as handed to on_assign: the committed offset
                offset = committed.get(where, size if self.latest else 0)
            elif offset == OFFSET_BEGINNING:
                offset = self.broker.start(*where)
            self.positions[where] = min(offset, size)

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(t, p) for t, p in self.positions]

    # -- reading ----------------------------------------------------------------------
    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[FakeMessage]:
        if self._subscribed is not None:
            self._join()
        out: list[FakeMessage] = []
        for (topic, partition), position in list(self.positions.items()):
            if (topic, partition) in self.paused:
                continue
            log = self.broker.topics[topic][partition]
            if position < self.broker.start(topic, partition):  # auto.offset.reset=error
                error = FakeError(KafkaError._AUTO_OFFSET_RESET, "Broker: Offset out of range")
                out.append(FakeMessage(topic, partition, position, _error=error))
                continue
            while position < len(log) and len(out) < num_messages:
                key, value = log[position]
                out.append(FakeMessage(topic, partition, position, key, value))
                position += 1
                self._at_eof.discard((topic, partition))
            self.positions[(topic, partition)] = position
            if (
                self.eof
                and position == len(log)
                and (topic, partition) not in self._at_eof
                and len(out) < num_messages
            ):
                self._at_eof.add((topic, partition))
                error = FakeError(KafkaError._PARTITION_EOF, "end of partition")
                out.append(FakeMessage(topic, partition, position, _error=error))
        return out

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused |= {(tp.topic, tp.partition) for tp in partitions}

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.paused -= {(tp.topic, tp.partition) for tp in partitions}

    def unsubscribe(self) -> None:
        """As librdkafka: the revocation runs, and the member leaves, in the next poll."""
        self._subscribed, self._leaving = None, True

    def memberid(self) -> str | None:
        return self.member

    def poll(self, timeout: float = -1) -> FakeMessage | None:
        if self._leaving:
            self.revoke()
            self.member, self._leaving = None, False
            return None
        messages = self.consume(1, timeout)
        return messages[0] if messages else None

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition(
                tp.topic, tp.partition, self.positions.get((tp.topic, tp.partition), -1001)
            )
            for tp in partitions
        ]

    def seek(self, partition: TopicPartition) -> None:
        offset = partition.offset
        if offset == OFFSET_BEGINNING:
            offset = self.broker.start(partition.topic, partition.partition)
        self.positions[(partition.topic, partition.partition)] = offset
        self._at_eof.discard((partition.topic, partition.partition))

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = -1, cached: bool = False
    ) -> tuple[int, int]:
        where = (partition.topic, partition.partition)
        return self.broker.start(*where), len(self.broker.topics[where[0]][where[1]])

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        return self.broker.metadata()

    # -- offsets ----------------------------------------------------------------------
    def committed(
        self, partitions: list[TopicPartition], timeout: float = -1
    ) -> list[TopicPartition]:
        committed = self.broker.committed.get(self.group, {})
        return [
            TopicPartition(tp.topic, tp.partition, committed.get((tp.topic, tp.partition), -1001))
            for tp in partitions
        ]

    def store_offsets(self, offsets: list[TopicPartition]) -> None:
        for tp in offsets:
            self.stored[(tp.topic, tp.partition)] = tp.offset

    def commit(self, **kwargs: Any) -> None:
        offsets = kwargs.get("offsets")
        if offsets is None:
            if not self.stored:
                raise KafkaException(FakeError(KafkaError._NO_OFFSET, "no offset"))
            chosen = dict(self.stored)
        else:
            chosen = {(tp.topic, tp.partition): tp.offset for tp in offsets}
        self.broker.committed.setdefault(self.group, {}).update(chosen)

    def consumer_group_metadata(self) -> str:
        return self.group

    def close(self) -> None:
        if self.stored:  # auto-commit's last round
            self.broker.committed.setdefault(self.group, {}).update(self.stored)
        self.closed = True


class FakeProducer:
    """A producer whose local queue holds ``queue.buffering.max.messages`` records (default
    1000); ``poll``/``flush`` deliver them (to the open transaction, if any)."""

    def __init__(self, broker: FakeBroker, config: dict[str, Any]) -> None:
        self.broker = broker
        self.limit = int(config.get("queue.buffering.max.messages", 1000))
        self.on_delivery = config.get("on_delivery")
        self.only_errors = bool(config.get("delivery.report.only.error", False))
        self.transactional = "transactional.id" in config
        self.queue: list[tuple[str, bytes | None, bytes | None, int, Any]] = []
        self.polls = 0
        self._transaction: list[tuple[str, bytes | None, bytes | None, int]] | None = None
        self._offsets: dict[tuple[str, int], int] = {}
        self._offsets_group = ""
        self._pending_call: str | None = None
        self.commits = self.aborts = 0

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int = -1,
        on_delivery: Any = None,
    ) -> None:
        if topic not in self.broker.topics:
            raise KafkaException(FakeError(KafkaError._UNKNOWN_TOPIC, f"unknown topic {topic}"))
        if value is not None and len(value) > self.broker.max_value_bytes:
            raise KafkaException(FakeError(KafkaError.MSG_SIZE_TOO_LARGE, "too large"))
        if self.transactional and self._transaction is None:
            raise KafkaException(FakeError(KafkaError._STATE, "no transaction open"))
        if len(self.queue) >= self.limit:
            raise BufferError("Local: Queue full")
        self.queue.append((topic, value, key, partition, on_delivery))

    def _deliver(self) -> int:
        queue, self.queue = self.queue, []
        for topic, value, key, partition, callback in queue:
            callback = callback or self.on_delivery
            if topic in self.broker.failing_topics:
                error = FakeError(KafkaError._MSG_TIMED_OUT, "message timed out")
                if callback is not None:
                    callback(error, FakeMessage(topic, max(partition, 0), -1, key, value))
                continue
            if self._transaction is not None:
                self._transaction.append((topic, value, key, partition))
            else:
                self.broker.append(topic, key, value, partition)
            if callback is not None and not self.only_errors:
                callback(None, FakeMessage(topic, max(partition, 0), -1, key, value))
        return len(queue)

    def poll(self, timeout: float = 0) -> int:
        self.polls += 1
        return self._deliver()

    def flush(self, timeout: float = -1) -> int:
        self._deliver()
        return 0

    def purge(self) -> None:
        self.queue = []

    def __len__(self) -> int:
        return len(self.queue)

    # -- transactions -----------------------------------------------------------------
    def init_transactions(self, timeout: float = -1) -> None:
        assert self.transactional

    def _call(self, name: str, errors: list[FakeError]) -> None:
        """librdkafka's rule for transactional calls: one that failed retriably (timed
        out) goes on in the background until the same call is made again, and any other
        call meanwhile fails at once with a retriable ``_CONFLICT``."""
        if self._pending_call not in (None, name):
            raise KafkaException(FakeError(
                KafkaError._CONFLICT,
                f"Conflicting {self._pending_call} API call is already in progress",
                retriable=True,
            ))  # fmt: skip
        self._pending_call = None
        if errors:
            error = errors.pop(0)
            if error.retriable() and not (error.txn_requires_abort() or error.fatal()):
                self._pending_call = name
            raise KafkaException(error)

    def begin_transaction(self) -> None:
        self._call("begin_transaction", [])
        assert self._transaction is None, "a transaction is open already"
        self._transaction = []
        self._offsets = {}

    def send_offsets_to_transaction(
        self, positions: list[TopicPartition], group_metadata: Any, timeout: float = -1
    ) -> None:
        self._call("send_offsets_to_transaction", self.broker.offsets_errors)
        self._offsets.update({(tp.topic, tp.partition): tp.offset for tp in positions})
        self._offsets_group = str(group_metadata)

    def commit_transaction(self, timeout: float = -1) -> None:
        self._deliver()
        self._call("commit_transaction", self.broker.commit_errors)
        assert self._transaction is not None
        for topic, value, key, partition in self._transaction:
            self.broker.append(topic, key, value, partition)
        if self._offsets:
            self.broker.committed.setdefault(self._offsets_group, {}).update(self._offsets)
        self._transaction = None
        self.commits += 1

    def abort_transaction(self, timeout: float = -1) -> None:
        self._call("abort_transaction", self.broker.abort_errors)
        self.queue = []
        self._transaction = None
        self.aborts += 1
