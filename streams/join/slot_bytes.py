"""The bytes of join stage 1: Avro primitives, request keys, and a request's packed state.

:class:`Slot` is one request's state while a record is applied to it; at rest it is a
:class:`~streams.records.JoinSlot` Avro body (no header), read and written here by hand
(``tests/unit/join/test_slots.py`` holds both to fastavro's bytes). Request ids become
store keys with :func:`request_key` (a UUID as a 128-bit int: half the memory).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

from streams.native import python_forced

__all__ = [
    "EMPTY_MAP",
    "Slot",
    "StoreKey",
    "changelog_key",
    "encode_label",
    "encode_long",
    "encode_string_map",
    "encode_text",
    "event_batch",
    "join_event",
    "join_event_python",
    "key_from_changelog",
    "request_id_of",
    "request_key",
    "request_key_python",
    "text",
    "timestamp",
]

_pack_double = struct.Struct("<d").pack
EMPTY_MAP = b"\x00"
"""An empty Avro map."""


def encode_long(n: int) -> bytes:
    """Avro long: zig-zag varint."""
    n = (n << 1) ^ (n >> 63)
    if n < 0x80:
        return _BYTE[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_BYTE = tuple(bytes((b,)) for b in range(256))
_SIZE = tuple(bytes((n << 1,)) for n in range(64))
"""Avro lengths 0..63: one byte each."""


def _size(n: int) -> bytes:
    return _SIZE[n] if n < 64 else encode_long(n)


_LONGS: dict[int, bytes] = {}


def timestamp(ms: int) -> bytes:
    """encode_long for clock readings: a batch stamps many records with the same one."""
    found = _LONGS.get(ms)
    if found is None:
        if len(_LONGS) >= 1024:
            _LONGS.clear()
        found = _LONGS[ms] = encode_long(ms)
    return found


_TEXT: dict[str, bytes] = {}


def encode_text(s: str) -> bytes:
    """Avro string (length + UTF-8); names that repeat (models, versions, experiments,
    segment keys and values) are cached."""
    found = _TEXT.get(s)
    if found is None:
        found = text(s)
        if len(_TEXT) < 4096 and len(found) <= 64:
            _TEXT[s] = found
    return found


def text(s: str) -> bytes:
    raw = s.encode()
    n = len(raw)
    return (_SIZE[n] if n < 64 else encode_long(n)) + raw  # _size, inlined: once a record


_MAPS: dict[tuple[tuple[str, str], ...], bytes] = {}


def encode_string_map(values: Mapping[str, str]) -> bytes:
    """An Avro map<string> in one block, as fastavro writes it (segment maps repeat, so
    their bytes are cached)."""
    if not values:
        return EMPTY_MAP
    items = tuple(values.items())
    found = _MAPS.get(items)
    if found is None:
        parts = [_size(len(items))]
        for key, value in items:
            parts.append(encode_text(key))
            parts.append(encode_text(value))
        parts.append(EMPTY_MAP)
        found = b"".join(parts)
        if len(_MAPS) >= 4096:
            _MAPS.clear()
        _MAPS[items] = found
    return found


def encode_label(value: float | str) -> bytes:
    """A label as the JoinEvent ``label`` union writes it (branch 1 double, 2 string)."""
    if isinstance(value, str):
        return b"\x04" + encode_text(value)
    return b"\x02" + _pack_double(float(value))


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


StoreKey = int | bytes
"""A request id as the state store holds it (see :func:`request_key`)."""


def request_key(request_id: str) -> StoreKey:
    """The store key of a request id: a canonical (lower-case) UUID as its 128-bit int,
    anything else as its UTF-8 bytes.

    Half the memory of the 36-character text for the ids the hook makes, and a distinct
    type, so no text id can collide with a UUID's key.

    Examples
    --------
    >>> request_key("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b") == 0x0190A1B2C3D47E5F8A9B0C1D2E3F4A5B
    True
    >>> request_key("order-17")
    b'order-17'
    """
    if (
        len(request_id) == 36
        and request_id[8] == request_id[13] == request_id[18] == request_id[23] == "-"
        and request_id.islower()
    ):
        digits = request_id.replace("-", "")
        # int() would also take "_", signs, spaces and non-ASCII digits: only [0-9a-f] map.
        if len(digits) == 32 and digits.isascii() and digits.isalnum():
            try:
                return int(digits, 16)
            except ValueError:  # a letter past f
                pass
    return request_id.encode()


def request_id_of(key: StoreKey) -> str:
    """The request id a store key was made from."""
    if isinstance(key, bytes):
        return key.decode()
    text = f"{key:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def changelog_key(key: StoreKey) -> bytes:
    """The changelog record key: 16 bytes for a UUID, else the id's UTF-8 (prefixed by
    0xFF, never valid UTF-8, when that is 16 bytes long too)."""
    if isinstance(key, int):
        return key.to_bytes(16, "big")
    return b"\xff" + key if len(key) == 16 else key


def key_from_changelog(data: bytes) -> StoreKey:
    """The inverse of :func:`changelog_key`."""
    if len(data) == 16:
        return int.from_bytes(data, "big")
    if len(data) == 17 and data[0] == 0xFF:
        return data[1:]
    return data


class Slot:
    """One request's stage-1 state while a record is applied to it (mutable).

    At rest it is :meth:`pack`'ed: an Avro :class:`~streams.records.JoinSlot` body.
    """

    __slots__ = (
        "candidates",
        "closed",
        "first_seen_ms",
        "inputs",
        "label",
        "labelled",
        "live",
        "model",
        "segments",
    )

    def __init__(self, model: str, first_seen_ms: int, segments: bytes = EMPTY_MAP) -> None:
        self.model = model
        self.first_seen_ms = first_seen_ms
        self.segments = segments
        self.live: bytes | None = None
        self.candidates: dict[str, bytes] = {}
        self.inputs: bytes | None = None
        self.label: bytes | None = None
        self.closed: list[str] = []
        self.labelled: list[str] = []

    def pack(self) -> bytes:
        """The Avro body of this state (JoinSlot, fields in schema order)."""
        if _native is not None:
            packed: bytes | None = _native.pack(self)
            if packed is not None:
                return packed
        return self.pack_python()

    def pack_python(self) -> bytes:
        """:meth:`pack` in Python (what the C one is tested against)."""
        segments, live, candidates = self.segments, self.live, self.candidates
        parts = [
            encode_text(self.model),
            timestamp(self.first_seen_ms),
            _size(len(segments)),
            segments,
        ]
        if live is None:
            parts.append(b"\x00")
        else:
            parts += (b"\x02", _size(len(live)), live)
        if candidates:
            parts.append(_size(len(candidates)))
            for version, stored in candidates.items():
                parts += (encode_text(version), _size(len(stored)), stored)
        parts.append(b"\x00")
        _optional_bytes(parts, self.inputs)
        _optional_bytes(parts, self.label)
        for names in (self.closed, self.labelled):
            if names:
                parts.append(_size(len(names)))
                parts.extend(encode_text(name) for name in names)
            parts.append(b"\x00")
        return b"".join(parts)

    @classmethod
    def unpack(cls, data: bytes) -> Slot:
        """Read :meth:`pack`'s bytes (single-block maps and arrays, as it writes them)."""
        if _native is not None and cls is Slot:
            slot: Slot | None = _native.unpack(data)
            if slot is not None:
                return slot
        return cls.unpack_python(data)

    @classmethod
    def unpack_python(cls, data: bytes) -> Slot:
        """:meth:`unpack` in Python (what the C one is tested against); it names what is
        wrong with bytes it cannot read."""
        try:
            return _unpack(cls, data)
        except IndexError:
            raise ValueError("join slot is truncated") from None

    @staticmethod
    def first_seen(data: bytes) -> int:
        """``first_seen_ms`` of packed bytes, read without unpacking the rest."""
        n, i = _varint(data, 0)
        return _varint(data, i + n)[0]


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
    The nested predictions are the request id, model, stored bytes and the request's
    segments, as :class:`~streams.codec.Codec` writes a Prediction.
    """
    head = rid + encode_text(slot.model)
    segments, live, inputs = slot.segments, slot.live, slot.inputs
    return b"".join(
        (
            start,
            rid,
            timestamp(now_ms),
            segments,
            b"\x00" if live is None else b"\x02" + head + live + segments,
            b"\x00" if candidate is None else b"\x02" + head + candidate + segments,
            slot.label or b"\x00",
            reason,
            b"\x02" + inputs if with_inputs and inputs is not None else b"\x00",
        )
    )


def _load_native() -> Any:
    """The C twins (``streams/join/_cslots.c``, built when a compiler was there); None
    without them or when ``SHADOW_EVAL_PURE_PYTHON`` is set."""
    if python_forced():
        return None
    try:
        from streams.join import _cslots
    except ImportError:
        return None
    _cslots.configure(Slot, join_event_python)
    return _cslots


request_key_python = request_key
join_event_python = join_event
_native = _load_native()
NATIVE = _native is not None
"""Whether :class:`Slot` packs and unpacks, and :func:`request_key` and :func:`join_event`
run, in C."""
if _native is not None:  # the same bytes (tests/unit/join/test_cslots.py), several times faster
    request_key = _native.request_key
    join_event = _native.join_event


def _varint(data: bytes, i: int) -> tuple[int, int]:
    """(zig-zag decoded long, next index)."""
    b = data[i]
    if b < 0x80:
        return (b >> 1) ^ -(b & 1), i + 1
    n = b & 0x7F
    shift = 7
    i += 1
    while b & 0x80:
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
    return (n >> 1) ^ -(n & 1), i


_NAMES: dict[bytes, str] = {}


def _name(raw: bytes) -> str:
    """Decoded model, version and experiment names: the same few, over and over."""
    name = _NAMES.get(raw)
    if name is None:
        if len(_NAMES) >= 4096:
            _NAMES.clear()
        name = _NAMES[raw] = raw.decode()
    return name


def _unpack(cls: type[Slot], data: bytes) -> Slot:
    # Lengths and counts below 64 are one byte (even, zig-zag): read inline, the rest
    # through _varint. Negative lengths cannot come out of either path unnoticed: a
    # negative slice end makes the final length check fail.
    n = data[0]
    n, i = (n >> 1, 1) if n < 0x80 else _varint(data, 0)
    model = _name(data[i : i + n])
    first_seen, i = _varint(data, i + n)
    n = data[i]
    n, i = (n >> 1, i + 1) if n < 0x80 else _varint(data, i)
    slot = cls(model, first_seen, data[i : i + n])
    i += n
    if data[i]:
        n = data[i + 1]
        n, i = (n >> 1, i + 2) if n < 0x80 else _varint(data, i + 1)
        slot.live = data[i : i + n]
        i += n
    else:
        i += 1
    count = data[i]
    if count:
        count, i = _varint(data, i)
        candidates = slot.candidates
        for _ in range(count):
            n = data[i]
            n, i = (n >> 1, i + 1) if n < 0x80 else _varint(data, i)
            version = _name(data[i : i + n])
            i += n
            n = data[i]
            n, i = (n >> 1, i + 1) if n < 0x80 else _varint(data, i)
            candidates[version] = data[i : i + n]
            i += n
        i = _end_of_block(data, i)
    else:
        i += 1
    if data[i]:
        n, i = _varint(data, i + 1)
        slot.inputs = data[i : i + n]
        i += n
    else:
        i += 1
    if data[i]:
        n = data[i + 1]
        n, i = (n >> 1, i + 2) if n < 0x80 else _varint(data, i + 1)
        slot.label = data[i : i + n]
        i += n
    else:
        i += 1
    for names in (slot.closed, slot.labelled):
        count = data[i]
        if count:
            count, i = _varint(data, i)
            for _ in range(count):
                n = data[i]
                n, i = (n >> 1, i + 1) if n < 0x80 else _varint(data, i)
                names.append(_name(data[i : i + n]))
                i += n
            i = _end_of_block(data, i)
        else:
            i += 1
    if i != len(data):
        raise ValueError(f"join slot has {len(data) - i} bytes left over")
    return slot


def _end_of_block(data: bytes, i: int) -> int:
    if data[i] != 0:
        raise ValueError("join slot has more than one block in a map or array")
    return i + 1


def _optional_bytes(parts: list[bytes], value: bytes | None) -> None:
    if value is None:
        parts.append(b"\x00")
    else:
        parts += (b"\x02", _size(len(value)), value)
