"""Request ids as join stage 1's store and changelog keys.

A canonical UUID (what the hook makes) becomes its 128-bit int: half the memory of the
36-character text, and a distinct type, so no text id can collide with a UUID's key.
"""

from __future__ import annotations

from streams.native import load_native

__all__ = [
    "StoreKey",
    "changelog_key",
    "key_from_changelog",
    "request_id_of",
    "request_key",
    "request_key_python",
]

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


request_key_python = request_key
_native = load_native("streams.join._cslots")
if _native is not None:  # same keys (tests/unit/join/test_cslots.py), several times faster
    request_key = _native.request_key
