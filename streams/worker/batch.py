"""Turn one consumed micro-batch into model inputs and rejects, without a Kafka import.

Messages are duck-typed (``value()``, ``key()``, ``topic()``, ``partition()``,
``offset()``, ``error()``), as confluent-kafka's ``Message`` is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from streams.codec import Codec, CodecError
from streams.kafka.limits import TOO_LARGE
from streams.records import ModelInput
from streams.worker.validate import Invalid, check_input

__all__ = ["Batch", "MessageLike", "Reject", "assemble"]


class MessageLike(Protocol):
    """What the worker reads from a consumed message."""

    def value(self) -> bytes | None: ...
    def key(self) -> bytes | None: ...
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def error(self) -> Any: ...


@dataclass(frozen=True, slots=True)
class Reject:
    """A message that goes to the dead-letter topic, with why."""

    message: MessageLike
    error_type: str
    reason: str


@dataclass(slots=True)
class Batch:
    """The scorable inputs of a micro-batch, its rejects and the offsets it covers."""

    inputs: list[ModelInput] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    skipped: int = 0
    """Inputs of another model (see ``model_name``), consumed but not scored."""
    errors: list[Any] = field(default_factory=list)
    """Consumer error events delivered in place of messages (handled or logged, not
    dead-lettered)."""
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    """``(topic, partition) -> offset after the last message``: what to commit when done."""


def _classify(error: CodecError) -> str:
    return "wrong_record_type" if error.reason.startswith("expected ") else "undecodable"


def assemble(
    messages: Sequence[MessageLike],
    codec: Codec,
    *,
    model_name: str | None = None,
    required: Sequence[str] | None = None,
    required_for: Any = None,
    max_bytes: int | None = None,
) -> Batch:
    """Decode and check each message of a micro-batch.

    Parameters
    ----------
    messages
        The consumed messages, in order.
    codec
        Decodes ``ModelInput`` records.
    model_name
        When set, inputs of other models are skipped.
    required
        Features every input must have.
    required_for
        Instead of ``required``: called with the first decoded input to get them
        (``ModelAdapter.required_features``).
    max_bytes
        Larger values are rejected (``too_large``) before decoding: a prediction carries
        its input's request id and segments, and must fit the producer's limit.

    Examples
    --------
    >>> class Msg:
    ...     def __init__(self, data, offset):
    ...         self.data, self.off = data, offset
    ...     def value(self): return self.data
    ...     def key(self): return None
    ...     def topic(self): return "shadow.inputs"
    ...     def partition(self): return 0
    ...     def offset(self): return self.off
    ...     def error(self): return None
    >>> codec = Codec()
    >>> good = codec.encode(ModelInput("r1", "churn", 0, {"age": 41.0}))
    >>> batch = assemble([Msg(good, 7), Msg(b"junk", 8)], codec)
    >>> [r.request_id for r in batch.inputs], [r.error_type for r in batch.rejects]
    (['r1'], ['undecodable'])
    >>> batch.next_offsets
    {('shadow.inputs', 0): 9}
    """
    batch = Batch()
    inputs, rejects, next_offsets = batch.inputs, batch.rejects, batch.next_offsets
    decode = codec.decode_as
    for message in messages:
        if message.error() is not None:
            batch.errors.append(message)
            continue
        topic, partition, offset = message.topic() or "", message.partition(), message.offset()
        if partition is None or offset is None:
            continue
        next_offsets[(topic, partition)] = offset + 1
        value = message.value()
        if max_bytes is not None and value is not None and len(value) > max_bytes:
            reason = f"{len(value)} bytes, over the worker's limit of {max_bytes}"
            rejects.append(Reject(message, TOO_LARGE, reason))
            continue
        try:
            record = decode(ModelInput, value, topic=topic, partition=partition, offset=offset)
        except CodecError as exc:
            rejects.append(Reject(message, _classify(exc), str(exc)))
            continue
        if model_name is not None and record.model != model_name:
            batch.skipped += 1
            continue
        if required is None and required_for is not None:
            required, required_for = required_for(record), None
        invalid: Invalid | None = check_input(record, required)
        if invalid is not None:
            rejects.append(Reject(message, invalid.error_type, invalid.reason))
            continue
        inputs.append(record)
    return batch
