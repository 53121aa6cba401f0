"""The boundary between shadow-eval's loops and librdkafka: a small interface, one factory.

The worker and both join stages talk to Kafka through the :class:`ConsumerLike` and
:class:`ProducerLike` methods below (a subset of confluent-kafka's ``Consumer`` and
``Producer``) and get their clients from a :class:`KafkaClients` factory.
:data:`CONFLUENT` builds the real ones; this module is the only place in ``streams/``
that constructs confluent-kafka ``Producer``, ``Consumer`` and ``AdminClient`` objects.
Unit tests hand the loops an in-process fake of the same interface (as httpx's
``MockTransport`` stands in for its network transport); the integration tests keep the
real broker.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, cast

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

__all__ = [
    "CONFLUENT",
    "AdminLike",
    "ConfluentClients",
    "ConsumerLike",
    "KafkaClients",
    "MessageLike",
    "ProducerLike",
    "RebalanceCallback",
    "topic_partitions",
]


class MessageLike(Protocol):
    """A consumed record, or an event in its place (``error()`` not None)."""

    def value(self) -> bytes | None: ...
    def key(self) -> bytes | None: ...
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def error(self) -> Any: ...


RebalanceCallback = Callable[[Any, list[TopicPartition]], None]


class ConsumerLike(Protocol):
    """What the loops call on a consumer (confluent-kafka's ``Consumer`` fits)."""

    def subscribe(self, topics: list[str], **callbacks: RebalanceCallback) -> None: ...
    def unsubscribe(self) -> None: ...
    def memberid(self) -> str | None: ...
    def consume(self, num_messages: int = ..., timeout: float = ...) -> list[Any]: ...
    def poll(self, timeout: float = ...) -> Any: ...
    def assign(self, partitions: list[TopicPartition]) -> None: ...
    def incremental_assign(self, partitions: list[TopicPartition]) -> None: ...
    def incremental_unassign(self, partitions: list[TopicPartition]) -> None: ...
    def assignment(self) -> list[TopicPartition]: ...
    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]: ...
    def committed(
        self, partitions: list[TopicPartition], timeout: float = ...
    ) -> list[TopicPartition]: ...
    def seek(self, partition: TopicPartition) -> None: ...
    def pause(self, partitions: list[TopicPartition]) -> None: ...
    def resume(self, partitions: list[TopicPartition]) -> None: ...
    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = ..., cached: bool = ...
    ) -> Any: ...
    def store_offsets(self, offsets: list[TopicPartition]) -> None: ...
    def commit(self, **kwargs: Any) -> Any: ...
    def consumer_group_metadata(self) -> Any: ...
    def list_topics(self, topic: str | None = ..., timeout: float = ...) -> Any: ...
    def close(self) -> None: ...


class ProducerLike(Protocol):
    """What the loops call on a producer (confluent-kafka's ``Producer`` fits)."""

    def produce(
        self,
        topic: str,
        value: bytes | None = ...,
        key: bytes | None = ...,
        partition: int = ...,
        on_delivery: Any = ...,
    ) -> None: ...
    def poll(self, timeout: float = ...) -> int: ...
    def flush(self, timeout: float = ...) -> int: ...
    def purge(self) -> None: ...
    def __len__(self) -> int: ...
    def init_transactions(self, timeout: float = ...) -> None: ...
    def begin_transaction(self) -> None: ...
    def send_offsets_to_transaction(
        self, positions: list[TopicPartition], group_metadata: Any, timeout: float = ...
    ) -> None: ...
    def commit_transaction(self, timeout: float = ...) -> None: ...
    def abort_transaction(self, timeout: float = ...) -> None: ...


class AdminLike(Protocol):
    """What shadow-eval asks an admin client (confluent-kafka's ``AdminClient`` fits)."""

    def list_topics(self, topic: str | None = ..., timeout: float = ...) -> Any: ...
    def describe_topics(self, topics: Any, **kwargs: Any) -> Any: ...
    def create_topics(self, new_topics: list[Any], **kwargs: Any) -> dict[str, Any]: ...
    def list_consumer_groups(self, **kwargs: Any) -> Any: ...
    def describe_consumer_groups(self, group_ids: list[str], **kwargs: Any) -> Any: ...


class KafkaClients(Protocol):
    """Makes clients from librdkafka configurations (see :mod:`streams.kafka.config`)."""

    def consumer(self, config: Mapping[str, Any]) -> ConsumerLike: ...
    def producer(self, config: Mapping[str, Any]) -> ProducerLike: ...
    def admin(self, config: Mapping[str, Any]) -> AdminLike: ...


class ConfluentClients:
    """The real clients: confluent-kafka's, on librdkafka.

    Examples
    --------
    >>> consumer = CONFLUENT.consumer({"group.id": "g", "bootstrap.servers": "127.0.0.1:9"})
    >>> consumer.close()
    """

    def consumer(self, config: Mapping[str, Any]) -> ConsumerLike:
        return cast(ConsumerLike, Consumer(dict(config)))

    def producer(self, config: Mapping[str, Any]) -> ProducerLike:
        return cast(ProducerLike, Producer(dict(config)))

    def admin(self, config: Mapping[str, Any]) -> AdminLike:
        return cast(AdminLike, AdminClient(dict(config)))

    def check(self, config: Mapping[str, Any]) -> str | None:
        """librdkafka's complaint about ``config`` (an unknown key, a bad value), or
        ``None``: a producer is built from it without a broker address and dropped.

        Examples
        --------
        >>> CONFLUENT.check({"client.rack": "r1"}) is None
        True
        >>> CONFLUENT.check({"key.serializer": "x"})
        'No such configuration property: "key.serializer"'
        """
        try:
            Producer({**config, "log_level": 0}).flush(0)
        except (KafkaException, ValueError, TypeError) as exc:
            error = exc.args[0] if exc.args else exc
            return str(error.str() if hasattr(error, "str") else error)
        return None


CONFLUENT = ConfluentClients()
"""The one factory of real clients."""


def topic_partitions(positions: Mapping[tuple[str, int], int]) -> list[TopicPartition]:
    """``(topic, partition) -> offset`` as confluent-kafka's ``TopicPartition`` list."""
    return [TopicPartition(t, p, o) for (t, p), o in positions.items()]
