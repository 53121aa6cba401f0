"""Request ids: UUIDv7 (RFC 9562), written by hand because Python 3.11 has no ``uuid.uuid7``.

Layout (RFC 9562 section 5.7): 48-bit Unix epoch milliseconds, version ``0b0111``, 12 bits
``rand_a``, variant ``0b10``, 62 bits ``rand_b``. ``rand_a`` holds the sub-millisecond
fraction of the clock (section 6.2, method 3), and a process-wide guard makes the 60-bit
timestamp strictly increase, so ids made one after another sort in creation order even
within one millisecond. ``rand_b`` comes from ``os.urandom`` (a CSPRNG, as section 6.9
asks), read 4 KiB at a time and discarded in a forked child.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

__all__ = ["uuid7", "uuid7_time_ms"]

_lock = threading.Lock()
_last_stamp = 0
_POOL_SIZE = 4096
_pool = b""
_pool_at = _POOL_SIZE


def _reset_after_fork() -> None:
    # A child must not reuse its parent's random bytes (nor its last stamp's lock state).
    global _pool, _pool_at, _lock
    _pool, _pool_at, _lock = b"", _POOL_SIZE, threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)
_RAND_B_MASK = (1 << 62) - 1
_VERSION_AND_VARIANT = (0x7 << 76) | (0b10 << 62)


def uuid7() -> str:
    """A new UUIDv7 in canonical text form (36 characters, lowercase hex).

    Examples
    --------
    >>> a, b = uuid7(), uuid7()
    >>> a < b, len(a), a[14]
    (True, 36, '7')
    """
    global _last_stamp, _pool, _pool_at
    now = time.time_ns()
    # 48 bits of milliseconds and 12 bits of the sub-millisecond fraction.
    stamp = ((now // 1_000_000) << 12) | ((now % 1_000_000) * 4096 // 1_000_000)
    with _lock:
        if stamp <= _last_stamp:
            stamp = _last_stamp + 1
        _last_stamp = stamp
        # os.urandom in bulk: one system call per 512 ids instead of one per id.
        if _pool_at >= _POOL_SIZE:
            _pool, _pool_at = os.urandom(_POOL_SIZE), 0
        rand_b = int.from_bytes(_pool[_pool_at : _pool_at + 8], "big") & _RAND_B_MASK
        _pool_at += 8
    value = ((stamp >> 12) << 80) | ((stamp & 0xFFF) << 64) | _VERSION_AND_VARIANT | rand_b
    h = value.to_bytes(16, "big").hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def uuid7_time_ms(request_id: str) -> int:
    """The Unix epoch milliseconds stored in a UUIDv7.

    Raises
    ------
    ValueError
        ``request_id`` is not a version-7 UUID.

    Examples
    --------
    >>> uuid7_time_ms("01890a5d-ac96-774b-bcce-b302099a8057")
    1688096058518
    """
    parsed = uuid.UUID(request_id)
    if parsed.version != 7:
        raise ValueError(f"{request_id!r} is not a UUIDv7 (version {parsed.version})")
    return parsed.int >> 80
