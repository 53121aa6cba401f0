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
- a letter of a record refused as too large (:data:`~streams.kafka.limits.TOO_LARGE`),
  or one that would not fit the producer's ``message.max.bytes`` (less
  :data:`~streams.kafka.limits.ENVELOPE_BYTES`) keeps the first
  :data:`~streams.kafka.limits.PREFIX_BYTES` of the value, never the whole value, and its
  reason gives the value's size and SHA-256 digest (:func:`fitted`);
- a letter refused all the same is sent again without the original value, the reason
  saying so.
"""

from __future__ import annotations

import time
from dataclasses import replace

from confluent_kafka import KafkaException

from streams.codec import Codec
from streams.kafka.clients import MessageLike
from streams.kafka.limits import ENVELOPE_BYTES, PREFIX_BYTES, TOO_LARGE, oversized_summary
from streams.kafka.producer import DeliveryCallback, ProducerWrapper
from streams.records import DeadLetter

__all__ = ["MAX_REASON_CHARS", "dead_letter", "fitted", "send_dead_letter"]

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

    Waits while the producer's queue is full; a letter over the producer's size limit
    keeps a prefix of its value (:func:`fitted`), one refused all the same goes again
    without its value. ``on_delivery`` is called if delivery fails.
    """
    letter = fitted(letter, producer.max_bytes)
    while True:
        try:
            producer.produce(topic, codec.encode(letter), letter.key, on_delivery=on_delivery)
            return letter
        except KafkaException as exc:  # e.g. the original value is too large to forward
            if letter.value is None:
                raise
            reason = f"{letter.reason} (value of {len(letter.value)} bytes not kept: {exc})"
            letter = replace(letter, value=None, reason=_truncated(reason))


def fitted(letter: DeadLetter, max_bytes: int) -> DeadLetter:
    """``letter``, or (too large, or it would not fit ``max_bytes``) with its value's
    prefix, and the value's size and digest in the reason.

    Examples
    --------
    >>> letter = DeadLetter("join", "t", 0, 5, "undecodable", "big", 0, b"k", b"x" * 5000)
    >>> small = fitted(letter, 4000 + ENVELOPE_BYTES)
    >>> len(small.value), small.reason[:30]
    (1024, 'big (value of 5000 bytes, sha25')
    >>> fitted(letter, 10_000 + ENVELOPE_BYTES) is letter
    True
    """
    value = letter.value
    if value is None:
        return letter
    size = len(value) + len(letter.key or b"") + len(letter.reason.encode())
    if size + ENVELOPE_BYTES <= max_bytes and letter.error_type != TOO_LARGE:
        return letter
    reason = _truncated(f"{letter.reason} ({oversized_summary(value)})")
    return replace(letter, value=value[:PREFIX_BYTES], reason=reason)


def _truncated(reason: str) -> str:
    if len(reason) <= MAX_REASON_CHARS:
        return reason
    return reason[: MAX_REASON_CHARS - 3] + "..."
