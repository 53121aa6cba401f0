"""Dead letters: a record no component could process, kept whole with the reason.

Shared by the shadow worker and the join agent. Build a :class:`~streams.records.DeadLetter`
from a consumed message with :func:`dead_letter`, send it with :func:`send_dead_letter`.
The DLQ message is keyed by the original key, so a poisoned request id stays traceable.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from confluent_kafka import KafkaError, Message, Producer

from streams.codec import Codec
from streams.records import DeadLetter

__all__ = ["ConsumedMessage", "DeliveryCallback", "dead_letter", "send_dead_letter"]

DeliveryCallback = Callable[[KafkaError | None, Message], None]
MAX_REASON_CHARS = 2000


class ConsumedMessage(Protocol):
    """What is read from a consumed message (confluent-kafka's ``Message`` fits)."""

    def value(self) -> bytes | None: ...
    def key(self) -> bytes | None: ...
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...


def dead_letter(
    message: ConsumedMessage,
    *,
    component: str,
    error_type: str,
    reason: str,
    timestamp_ms: int | None = None,
) -> DeadLetter:
    """The dead letter of one consumed message: where it came from, its bytes, why.

    Examples
    --------
    >>> class Msg:
    ...     def value(self): return b"junk"
    ...     def key(self): return b"r1"
    ...     def topic(self): return "shadow.inputs"
    ...     def partition(self): return 2
    ...     def offset(self): return 7
    >>> letter = dead_letter(Msg(), component="worker", error_type="undecodable",
    ...                      reason="not Avro", timestamp_ms=0)
    >>> letter.source_topic, letter.source_partition, letter.source_offset, letter.value
    ('shadow.inputs', 2, 7, b'junk')
    """
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[: MAX_REASON_CHARS - 3] + "..."
    partition, offset = message.partition(), message.offset()
    return DeadLetter(
        component=component,
        source_topic=message.topic() or "",
        source_partition=-1 if partition is None else partition,
        source_offset=-1 if offset is None else offset,
        error_type=error_type,
        reason=reason,
        timestamp_ms=int(time.time() * 1000) if timestamp_ms is None else timestamp_ms,
        key=message.key(),
        value=message.value(),
    )


def send_dead_letter(
    producer: Producer,
    topic: str,
    letter: DeadLetter,
    codec: Codec,
    on_delivery: DeliveryCallback | None = None,
) -> None:
    """Produce ``letter`` to ``topic`` keyed by the original key.

    Pass ``on_delivery`` when the source offset may only be committed once the dead
    letter is stored (at-least-once); the producer's ``BufferError`` propagates.
    """
    data = codec.encode(letter)
    if on_delivery is None:
        producer.produce(topic, data, letter.key)
    else:
        producer.produce(topic, data, letter.key, on_delivery=on_delivery)
