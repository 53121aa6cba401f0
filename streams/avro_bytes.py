"""The Avro primitives of every fast path, in one place: varints, zig-zag longs, lengths,
strings, string and double maps, doubles, and a skipper of any value of a schema.

The codec's hand-written readers and writers (:mod:`streams.codec.fastread`,
:mod:`streams.codec.fastwrite`) and the join's state and event bytes
(:mod:`streams.join.slot_state`, :mod:`streams.join.slot_events`) are built from these;
their C twins from ``streams/_avro.h``, which mirrors this module. fastavro stays the
reference: ``tests/unit/codec/test_fast.py`` holds them to its bytes.

Readers take the buffer and the index to start at and return ``(value, next index)``.
They do not check bounds field by field: a read past the end raises ``IndexError`` (or
``struct.error``), a slice past the end leaves the index beyond ``len(data)``, and the
caller's final ``i == len(data)`` check gives up. What they cannot read exactly raises
:class:`GiveUp` (the codec then asks fastavro, which reads it or names the error).

Examples
--------
>>> encode_long(-3), read_varint(encode_long(-3), 0)
(b'\\x05', (-3, 1))
>>> read_text(text("héllo"), 0)
('héllo', 7)
>>> skip = skipper(["null", {"type": "map", "values": "string"}])
>>> skip(b"\\x02" + encode_string_map({"a": "b"}), 0)
7
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "EMPTY_MAP",
    "LEN",
    "LEN_TABLE",
    "SHORT_LEN",
    "GiveUp",
    "cached_long",
    "encode_label",
    "encode_long",
    "encode_string_map",
    "encode_text",
    "pack_double",
    "read_double_map",
    "read_long",
    "read_size",
    "read_string_map",
    "read_text",
    "read_varint",
    "size",
    "skipper",
    "string_map",
    "text",
    "unpack_double",
    "varint",
]

EMPTY_MAP = b"\x00"
"""An empty Avro map (or array): the end marker alone."""

pack_double = struct.Struct("<d").pack
unpack_double = struct.Struct("<d").unpack_from


class GiveUp(Exception):
    """Not something the fast readers handle exactly; fastavro decides."""


# ---------------------------------------------------------------------------- writing
def varint(n: int) -> bytes:
    """Base-128 varint of a non-negative (already zig-zagged) number."""
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def encode_long(n: int) -> bytes:
    """Avro long: zig-zag varint (``n`` must fit in 64 bits)."""
    return varint((n << 1) ^ (n >> 63))


LEN_TABLE = 4096
LEN = tuple(varint(n << 1) for n in range(LEN_TABLE))
"""Lengths, counts and union indexes below :data:`LEN_TABLE`, looked up."""


def size(n: int) -> bytes:
    """A length or count (non-negative)."""
    return LEN[n] if n < LEN_TABLE else varint(n << 1)


_LONGS: dict[int, bytes] = {}


def cached_long(value: int) -> bytes:
    """:func:`encode_long`, memoised: timestamps repeat (one per batch, one per
    millisecond), and the 6-byte varint loop costs ~0.45 us."""
    encoded = _LONGS.get(value)
    if encoded is None:
        if len(_LONGS) >= 4096:
            _LONGS.clear()
        encoded = _LONGS[value] = encode_long(value)
    return encoded


def text(s: str) -> bytes:
    """Avro string: length, then UTF-8."""
    raw = s.encode()
    n = len(raw)
    return (LEN[n] if n < LEN_TABLE else varint(n << 1)) + raw


_TEXT: dict[str, bytes] = {}


def encode_text(s: str) -> bytes:
    """:func:`text` for names that repeat (models, versions, experiments, segment keys
    and values): short ones are cached."""
    found = _TEXT.get(s)
    if found is None:
        found = text(s)
        if len(_TEXT) < 4096 and len(found) <= 64:
            _TEXT[s] = found
    return found


def string_map(mapping: Any) -> bytes | None:
    """A map<string> as fastavro writes it (one block, then the end marker); ``None`` for
    anything but a dict of str to str."""
    if type(mapping) is not dict:
        return None
    if not mapping:
        return EMPTY_MAP
    parts = [size(len(mapping))]
    for key, value in mapping.items():
        if type(key) is not str or type(value) is not str:
            return None
        parts.append(text(key))
        parts.append(text(value))
    parts.append(EMPTY_MAP)
    return b"".join(parts)


_MAPS: dict[tuple[tuple[str, str], ...], bytes] = {}


def encode_string_map(values: Mapping[str, str]) -> bytes:
    """:func:`string_map` of a checked mapping, cached (segment maps repeat)."""
    if not values:
        return EMPTY_MAP
    items = tuple(values.items())
    found = _MAPS.get(items)
    if found is None:
        parts = [size(len(items))]
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
    """A ``["null", "double", "string"]`` union of a label (branch 1 double, 2 string)."""
    if isinstance(value, str):
        return b"\x04" + encode_text(value)
    return b"\x02" + pack_double(float(value))


# ---------------------------------------------------------------------------- reading
SHORT_LEN = tuple(b >> 1 if b < 0x80 and not b & 1 else -1 for b in range(256))
"""A one-byte varint that is an even zig-zag number is a length 0..63; -1 marks the rest."""


def read_varint(data: bytes, i: int) -> tuple[int, int]:
    """(zig-zag decoded long, next index) of the varint at ``i``.

    Gives up past 64 bits, where fastavro's C reader wraps around instead of failing.
    """
    b = data[i]
    n = b & 0x7F
    shift = 7
    i += 1
    while b > 0x7F:
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
    if shift > 70 or n >> 64:
        raise GiveUp
    return (n >> 1) ^ -(n & 1), i


HIGH_BITS: dict[bytes, int] = {}
"""Timestamps: an epoch-milliseconds long is a 6-byte varint (until 2109) whose last four
bytes change only every 8 seconds. Those four bytes, when they end a varint, are looked
up here (their bits 14-41), leaving two bytes to decode: 0.25 us, not 0.45."""


def read_long(data: bytes, i: int) -> tuple[int, int]:
    """:func:`read_varint`, fast for timestamps."""
    b0 = data[i]
    if b0 > 0x7F:
        b1 = data[i + 1]
        if b1 > 0x7F:
            tail = data[i + 2 : i + 6]
            high = HIGH_BITS.get(tail)
            if high is not None:
                n = high | (b0 & 0x7F) | (b1 & 0x7F) << 7
                return (n >> 1) ^ -(n & 1), i + 6
            if len(tail) == 4 and tail[0] & tail[1] & tail[2] & 0x80 and tail[3] < 0x80:
                if len(HIGH_BITS) >= 4096:
                    HIGH_BITS.clear()
                HIGH_BITS[tail] = (
                    (tail[0] & 0x7F) << 14
                    | (tail[1] & 0x7F) << 21
                    | (tail[2] & 0x7F) << 28
                    | tail[3] << 35
                )
    return read_varint(data, i)


def read_size(data: bytes, i: int) -> tuple[int, int]:
    """A length or block count: never negative on the fast path (a negative block count
    carries a byte size; fastavro handles it)."""
    n, i = read_varint(data, i)
    if n < 0:
        raise GiveUp
    return n, i


def read_text(data: bytes, i: int) -> tuple[str, int]:
    n = SHORT_LEN[data[i]]
    if n < 0:
        n, i = read_size(data, i)
    else:
        i += 1
    return data[i : i + n].decode(), i + n


def read_string_map(data: bytes, i: int) -> tuple[dict[str, str], int]:
    short = SHORT_LEN  # the reads inlined: a call per string costs ~0.1 us
    result: dict[str, str] = {}
    while True:  # blocks, up to the 0 end marker
        count = short[data[i]]
        if count < 0:
            count, i = read_size(data, i)
        else:
            i += 1
        if not count:
            return result, i
        for _ in range(count):
            n = short[data[i]]
            if n < 0:
                n, i = read_size(data, i)
            else:
                i += 1
            key = data[i : i + n].decode()
            i += n
            n = short[data[i]]
            if n < 0:
                n, i = read_size(data, i)
            else:
                i += 1
            result[key] = data[i : i + n].decode()
            i += n


def read_double_map(data: bytes, i: int) -> tuple[dict[str, float], int]:
    short, unpack = SHORT_LEN, unpack_double
    result: dict[str, float] = {}
    while True:  # blocks, up to the 0 end marker
        count = short[data[i]]
        if count < 0:
            count, i = read_size(data, i)
        else:
            i += 1
        if not count:
            return result, i
        for _ in range(count):
            n = short[data[i]]
            if n < 0:
                n, i = read_size(data, i)
            else:
                i += 1
            key = data[i : i + n].decode()
            i += n
            (result[key],) = unpack(data, i)
            i += 8


# ---------------------------------------------------------------------------- skipping
Skip = Callable[[bytes, int], int]
_FIXED_SIZES = {"null": 0, "float": 4, "double": 8}


def skipper(schema: Any, named: Mapping[str, Any] | None = None) -> Skip:
    """A function that returns the index after the value of ``schema`` (a type as written
    in an ``.avsc``) that starts at ``i``; names resolve against ``named`` and the types
    defined inline."""
    return _skipper(schema, dict(named or {}))


def _skipper(schema: Any, named: dict[str, Any]) -> Skip:
    if isinstance(schema, list):
        branches = [_skipper(s, named) for s in schema]
        return lambda data, i: _skip_union(branches, data, i)
    if isinstance(schema, str):
        if schema in _FIXED_SIZES:
            width = _FIXED_SIZES[schema]
            return lambda data, i: i + width
        if schema in ("boolean",):
            return lambda data, i: i + 1
        if schema in ("int", "long"):
            return lambda data, i: read_varint(data, i)[1]
        if schema in ("string", "bytes"):
            return lambda data, i: sum(read_size(data, i))
        return _skipper(named[schema], named)
    kind = schema["type"]
    if "name" in schema:
        named.setdefault(schema["name"], schema)
    if kind == "record":
        steps = [_skipper(f["type"], named) for f in schema["fields"]]
        return lambda data, i: _skip_all(steps, data, i)
    if kind == "enum":
        return lambda data, i: read_varint(data, i)[1]
    if kind == "fixed":
        width = int(schema["size"])
        return lambda data, i: i + width
    if kind in ("map", "array"):
        key = _skipper("string", named) if kind == "map" else None
        item = _skipper(schema["values" if kind == "map" else "items"], named)
        return lambda data, i: _skip_blocks(key, item, data, i)
    return _skipper(kind, named)  # {"type": "long", ...}


def _skip_union(branches: list[Skip], data: bytes, i: int) -> int:
    branch, i = read_varint(data, i)
    return branches[branch](data, i)


def _skip_all(steps: list[Skip], data: bytes, i: int) -> int:
    for step in steps:
        i = step(data, i)
    return i


def _skip_blocks(key: Skip | None, item: Skip, data: bytes, i: int) -> int:
    while True:
        count, i = read_varint(data, i)
        if not count:
            return i
        if count < 0:  # a block with its byte size: skip it whole
            block, i = read_varint(data, i)
            i += block
            continue
        for _ in range(count):
            i = item(data, i if key is None else key(data, i))
