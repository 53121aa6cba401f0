"""The join events of join stage 1, written from a request's :class:`Slot` by
concatenation: a stored prediction is copied into the event byte for byte.

A JoinEvent's nested Prediction is the request id, the model, the stored bytes and the
request's segments, exactly what :class:`~streams.codec.Codec` would write for it (where
``segments`` is not the Prediction's last field, it goes back in where
:data:`~streams.join.layout.LAYOUT` says). The C twin (``streams/join/_cslots.c``) writes
the same bytes for the usual layout (``tests/unit/join/test_cslots.py``).
"""

from __future__ import annotations

from collections.abc import Iterator

from streams.avro_bytes import EMPTY_MAP, cached_long, encode_long, encode_text
from streams.join.layout import LAYOUT
from streams.join.slot_state import Slot, _native

__all__ = [
    "MAX_EVENTS_BYTES",
    "NATIVE",
    "event_batch",
    "event_chunks",
    "join_event",
    "join_event_python",
]

MAX_EVENTS_BYTES = 256 * 1024
"""Join events per JoinEventBatch record at most, in bytes (a larger event goes alone),
well inside the broker's default 1 MB record limit."""


def join_event(
    start: bytes,
    rid: bytes,
    slot: Slot,
    candidate: bytes | None,
    now_ms: int,
    with_inputs: bool,
    reason: bytes = b"\x00",
) -> bytes:
    """A JoinEvent message of a request's state (the C one when built: it is made once
    per event).

    ``start`` is its first bytes (wire header, kind, experiment), ``rid`` the request id
    as an Avro string, ``candidate`` the stored candidate prediction, ``with_inputs``
    whether it carries the request's inputs, ``reason`` the encoded expiry reason union.
    """
    head = rid + encode_text(slot.model)
    segments, live, inputs = slot.segments, slot.live, slot.inputs
    return b"".join(
        (
            start,
            rid,
            cached_long(now_ms),
            segments,
            b"\x00" if live is None else _nested(head, live, segments),
            b"\x00" if candidate is None else _nested(head, candidate, segments),
            slot.label or b"\x00",
            reason,
            b"\x02" + inputs if with_inputs and inputs is not None else b"\x00",
        )
    )


def _nested(head: bytes, stored: bytes, segments: bytes) -> bytes:
    """A stored prediction as a JoinEvent's ``["null", Prediction]`` branch 1."""
    if LAYOUT.segments_last:
        return b"\x02" + head + stored + segments
    at = LAYOUT.skip_middle(stored, 0)
    return b"".join((b"\x02", head, stored[:at], segments, stored[at:]))


def event_batch(header: bytes, events: list[bytes]) -> bytes:
    """A JoinEventBatch message (``header``: its 5-byte wire header) of encoded JoinEvent
    messages, their bodies copied byte for byte.

    Examples
    --------
    >>> from streams.codec import Codec
    >>> from streams.records import JoinEvent, JoinEventBatch, JoinKind
    >>> codec = Codec()
    >>> events = [JoinEvent(JoinKind.EXPIRED, "e", f"r{n}", 0, None, None) for n in (1, 2)]
    >>> batch = event_batch(codec.header_of(JoinEventBatch), [codec.encode(e) for e in events])
    >>> batch == codec.encode(JoinEventBatch(tuple(events)))
    True
    """
    if not events:
        return header + EMPTY_MAP  # an empty array ends like an empty map
    return b"".join((header, encode_long(len(events)), *[e[5:] for e in events], EMPTY_MAP))


join_event_python = join_event
NATIVE = _native is not None and LAYOUT.segments_last
"""Whether :func:`join_event` runs in C (it writes the usual layout only)."""
if NATIVE:
    _native.set_event_fallback(join_event_python)
    join_event = _native.join_event


def event_chunks(values: list[bytes]) -> Iterator[list[bytes]]:
    """``values`` in order, in lists of at most MAX_EVENTS_BYTES (a larger value alone):
    the events of one JoinEventBatch record each.

    Examples
    --------
    >>> [len(c) for c in event_chunks([bytes(100_000)] * 5 + [bytes(300_000)])]
    [2, 2, 1, 1]
    """
    chunk: list[bytes] = []
    size = 0
    for value in values:
        if chunk and size + len(value) > MAX_EVENTS_BYTES:
            yield chunk
            chunk, size = [], 0
        chunk.append(value)
        size += len(value)
    if chunk:
        yield chunk
