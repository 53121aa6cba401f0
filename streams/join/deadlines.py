"""When each pending request next needs an expiry check, so an expiry pass looks only at
the requests that are due instead of every request held.

A request has at most two deadlines, both fixed by when it was first seen: ``pair_ttl``
(settle unpaired experiments) and ``label_ttl`` (settle everything, drop the state). Each
request is filed under its earliest possible deadline when it is created; when that comes,
the caller checks the state and files it again under the next one, if any. Entries of
requests that are gone by then are skipped. So a pass costs what is due, and the index
costs about one list slot (8 bytes) per pending request: the ``memory://`` store's index
(``rocksdb://`` keeps its deadlines on disk, in the same database as the states).
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["Deadlines"]

K = TypeVar("K", bound=Hashable)


class Deadlines(Generic[K]):
    """Keys by due time, in whole seconds.

    Examples
    --------
    >>> due = Deadlines[str]()
    >>> due.add("r1", 5_000)
    >>> due.add("r2", 9_500)
    >>> due.take_due(6_000, 100), due.take_due(6_000, 100), len(due)
    (['r1'], [], 1)
    >>> due.take_due(10_000, 100)
    ['r2']
    """

    def __init__(self) -> None:
        self._buckets: dict[int, list[K]] = {}
        self._seconds: list[int] = []  # heap of the bucket times
        self._count = 0

    def add(self, key: K, due_ms: int) -> None:
        """File ``key`` to be checked at ``due_ms`` (rounded up to the second)."""
        second = -(-due_ms // 1000)
        bucket = self._buckets.get(second)
        if bucket is None:
            bucket = self._buckets[second] = []
            heapq.heappush(self._seconds, second)
        bucket.append(key)
        self._count += 1

    def take_due(self, now_ms: int, limit: int) -> list[K]:
        """Take out up to ``limit`` keys due at ``now_ms`` or earlier, earliest first (the
        rest of a bucket stays filed)."""
        taken: list[K] = []
        seconds = self._seconds
        while seconds and seconds[0] * 1000 <= now_ms and len(taken) < limit:
            second = seconds[0]
            bucket = self._buckets[second]
            room = limit - len(taken)
            taken += bucket[:room]
            if len(bucket) > room:
                del bucket[:room]
            else:
                heapq.heappop(seconds)
                del self._buckets[second]
        self._count -= len(taken)
        return taken

    def clear(self) -> None:
        self._buckets.clear()
        self._seconds.clear()
        self._count = 0

    def __len__(self) -> int:
        return self._count
