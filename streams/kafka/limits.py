"""Size limits: what a producer may send, and the dead letter of a record too large.

A producer's limit is its own librdkafka ``message.max.bytes`` (default 1,000,000): a
record larger than that is refused by ``produce`` itself (``MSG_SIZE_TOO_LARGE``, raised
synchronously), before any broker sees it. The broker's ``message.max.bytes`` (default
1,048,588) and a topic's ``max.message.bytes`` bound what it accepts, so a record that
another client wrote under the broker's limit can still be over ours. Keep the client
setting at or below the broker's and the topics' (a client limit above them only moves
the refusal to the delivery report). Every producer of shadow-eval knows its limit
(:attr:`~streams.kafka.ProducerWrapper.max_bytes`) and checks a record it derives from
consumed bytes against it before producing, so nothing a consumer reads makes a
producer raise.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

__all__ = [
    "DEFAULT_MESSAGE_MAX_BYTES",
    "ENVELOPE_BYTES",
    "PREFIX_BYTES",
    "TOO_LARGE",
    "message_max_bytes",
    "oversized_summary",
    "record_limit",
]

DEFAULT_MESSAGE_MAX_BYTES = 1_000_000
"""librdkafka's default ``message.max.bytes``."""
ENVELOPE_BYTES = 8192
"""Room kept for what wraps a value: a dead letter's other fields, headers, the batch."""
PREFIX_BYTES = 1024
"""How much of an oversized value its dead letter keeps."""

TOO_LARGE = "too_large"
"""The error type (dead letters) and outcome (hook counters) of a record over a limit."""


def message_max_bytes(config: Mapping[str, Any]) -> int:
    """The ``message.max.bytes`` a librdkafka config gives its client.

    Examples
    --------
    >>> message_max_bytes({}), message_max_bytes({"message.max.bytes": "2000000"})
    (1000000, 2000000)
    """
    return int(config.get("message.max.bytes", DEFAULT_MESSAGE_MAX_BYTES))


def oversized_summary(value: bytes) -> str:
    """What a dead letter says of a value it does not keep whole: its size and digest.

    Examples
    --------
    >>> oversized_summary(b"abc")[:60]
    'value of 3 bytes, sha256 ba7816bf8f01cfea414140de5dae2223b003'
    """
    digest = hashlib.sha256(value).hexdigest()
    return f"value of {len(value)} bytes, sha256 {digest}, first {PREFIX_BYTES} bytes kept"


def record_limit(max_bytes: int, parts: int = 1) -> int:
    """The largest consumed value a producer of ``max_bytes`` may carry, ``parts`` at once.

    Join stage 1 keeps a request's live, candidate and label values in one state record
    and copies them into its join events: each may use one ``parts``-th of the limit.

    Examples
    --------
    >>> record_limit(1_000_000, 8)
    123976
    """
    return (max_bytes - ENVELOPE_BYTES) // parts
