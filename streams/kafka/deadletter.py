"""Dead letters: a record no component could process, kept whole with the reason.

The one dead-letter path of the shadow worker and both join stages: build a
:class:`~streams.records.DeadLetter` from a consumed message with :func:`dead_letter`,
produce it with :func:`send_dead_letter`. The behaviour, the same everywhere:

- the reason keeps at most :data:`MAX_REASON_CHARS` characters (longer ones end in
  ``...``): a reason may quote the bad input;
- the source topic, partition and offset are the message's; a partition or offset the
  message lacks is ``-1`` (never ``0``, which is a real position);
- the DLQ record is keyed by the original key (a poisoned request id stays traceable)
  and partitioned by the producer's partitioner (murmur2, as every other record);
- a letter the broker refuses as too large is sent again without the original value,
  the reason saying so.
"""

from __future__ import annotations

import time
from dataclasses import replace

from confluent_kafka import KafkaException

from streams.codec import Codec
from streams.kafka.clients import MessageLike
from streams.kafka.producer import DeliveryCallback, ProducerWrapper
from streams.records import DeadLetter

__all__ = ["MAX_REASON_CHARS", "dead_letter", "send_dead_letter"]

MAX_REASON_CHARS = 2000


def dead_letter(
    message: MessageLike,
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
    ...     def error(self): return None
    >>> letter = dead_letter(Msg(), component="worker", error_type="undecodable",
    ...                      reason="not Avro", timestamp_ms=0)
    >>> letter.source_topic, letter.source_partition, letter.source_offset, letter.value
    ('shadow.inputs', 2, 7, b'junk')
    >>> len(dead_letter(Msg(), component="join", error_type="x", reason="?" * 5000).reason)
    2000
    """
    partition, offset = message.partition(), message.offset()
    return DeadLetter(
        component=component,
        source_topic=message.topic() or "",
        source_partition=-1 if partition is None else partition,
        source_offset=-1 if offset is None else offset,
        error_type=error_type,
        reason=_truncated(reason),
        timestamp_ms=int(time.time() * 1000) if timestamp_ms is None else timestamp_ms,
        key=message.key(),
        value=message.value(),
    )


def send_dead_letter(
    producer: ProducerWrapper,
    topic: str,
    letter: DeadLetter,
    codec: Codec,
    on_delivery: DeliveryCallback | None = None,
) -> DeadLetter:
    """Produce ``letter`` to ``topic`` keyed by the original key; returns what was sent.

    Waits while the producer's queue is full; a letter refused as too large goes again
    without its value. ``on_delivery`` is called if delivery fails.
    """
    while True:
        try:
            producer.produce(topic, codec.encode(letter), letter.key, on_delivery=on_delivery)
            return letter
        except KafkaException as exc:  # e.g. the original value is too large to forward
            if letter.value is None:
                raise
            reason = f"{letter.reason} (value of {len(letter.value)} bytes not kept: {exc})"
            letter = replace(letter, value=None, reason=_truncated(reason))


def _truncated(reason: str) -> str:
    if len(reason) <= MAX_REASON_CHARS:
        return reason
    return reason[: MAX_REASON_CHARS - 3] + "..."
