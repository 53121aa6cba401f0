"""A request's join-stage-1 state: :class:`Slot`, and its packed form at rest.

:class:`Slot` is one request's state while a record is applied to it; at rest it is a
:class:`~streams.records.JoinSlot` Avro body (no header), packed and unpacked here from
the primitives of :mod:`streams.avro_bytes` (``tests/unit/join/test_slots.py`` holds both
to fastavro's bytes; :mod:`streams.join.layout` checks the schema still has this layout).
"""

from __future__ import annotations

from typing import Any

from streams.avro_bytes import EMPTY_MAP, GiveUp, cached_long, encode_text, read_varint, size
from streams.join.layout import LAYOUT, v1_suffix  # (checks the JoinSlot layout at import)
from streams.native import load_native
from streams.schema_files import latest_schemas

__all__ = ["NATIVE", "Slot"]


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
            cached_long(self.first_seen_ms),
            size(len(segments)),
            segments,
        ]
        if live is None:
            parts.append(b"\x00")
        else:
            parts += (b"\x02", size(len(live)), live)
        if candidates:
            parts.append(size(len(candidates)))
            for version, stored in candidates.items():
                parts += (encode_text(version), size(len(stored)), stored)
        parts.append(b"\x00")
        _optional_bytes(parts, self.inputs)
        _optional_bytes(parts, self.label)
        for names in (self.closed, self.labelled):
            if names:
                parts.append(size(len(names)))
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
        except GiveUp:
            raise ValueError("join slot has a varint past 64 bits") from None

    @classmethod
    def upgrade_v1(cls, data: bytes) -> bytes | None:
        """A JoinSlot version 1 body (its predictions Prediction version 1) as the
        current version packs it; ``None`` when the schemas moved otherwise
        (:func:`streams.join.layout.v1_suffix`)."""
        if _V1_SUFFIX is None:
            return None
        slot = cls.unpack(data)
        if slot.live is not None:
            slot.live += _V1_SUFFIX
        for version, stored in slot.candidates.items():
            slot.candidates[version] = stored + _V1_SUFFIX
        return slot.pack()

    @staticmethod
    def first_seen(data: bytes) -> int:
        """``first_seen_ms`` of packed bytes, read without unpacking the rest."""
        n, i = read_varint(data, 0)
        return read_varint(data, i + n)[0]


def _load_native() -> Any:
    native = load_native("streams.join._cslots")
    if native is not None:
        native.configure(Slot)
    return native


_native = _load_native()
_V1_SUFFIX = v1_suffix(latest_schemas(), LAYOUT)
NATIVE = _native is not None
"""Whether :class:`Slot` packs and unpacks in C (same bytes: tests/unit/join/test_cslots.py)."""


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
    # through read_varint. Negative lengths cannot come out of either path unnoticed: a
    # negative slice end makes the final length check fail.
    n = data[0]
    n, i = (n >> 1, 1) if n < 0x80 else read_varint(data, 0)
    model = _name(data[i : i + n])
    first_seen, i = read_varint(data, i + n)
    n = data[i]
    n, i = (n >> 1, i + 1) if n < 0x80 else read_varint(data, i)
    slot = cls(model, first_seen, data[i : i + n])
    i += n
    if data[i]:
        n = data[i + 1]
        n, i = (n >> 1, i + 2) if n < 0x80 else read_varint(data, i + 1)
        slot.live = data[i : i + n]
        i += n
    else:
        i += 1
    count = data[i]
    if count:
        count, i = read_varint(data, i)
        candidates = slot.candidates
        for _ in range(count):
            n = data[i]
            n, i = (n >> 1, i + 1) if n < 0x80 else read_varint(data, i)
            version = _name(data[i : i + n])
            i += n
            n = data[i]
            n, i = (n >> 1, i + 1) if n < 0x80 else read_varint(data, i)
            candidates[version] = data[i : i + n]
            i += n
        i = _end_of_block(data, i)
    else:
        i += 1
    if data[i]:
        n, i = read_varint(data, i + 1)
        slot.inputs = data[i : i + n]
        i += n
    else:
        i += 1
    if data[i]:
        n = data[i + 1]
        n, i = (n >> 1, i + 2) if n < 0x80 else read_varint(data, i + 1)
        slot.label = data[i : i + n]
        i += n
    else:
        i += 1
    for names in (slot.closed, slot.labelled):
        count = data[i]
        if count:
            count, i = read_varint(data, i)
            for _ in range(count):
                n = data[i]
                n, i = (n >> 1, i + 1) if n < 0x80 else read_varint(data, i)
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
        parts += (b"\x02", size(len(value)), value)
