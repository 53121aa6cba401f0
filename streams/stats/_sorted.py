"""A small bucketed sorted list: O(log n) search, bounded moves per insert/remove.

Buckets are ``array('d')`` so that :meth:`SortedList.to_array` is a contiguous copy.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, insort
from collections.abc import Iterator
from itertools import chain

import numpy as np
import numpy.typing as npt

__all__ = ["SortedList"]

_LOAD = 512


class SortedList:
    """Multiset of floats kept sorted in buckets of at most ``2 * 512`` values (float64).

    Examples
    --------
    >>> s = SortedList([3.0, 1.0, 2.0, 2.0])
    >>> s.remove(2.0)
    >>> list(s), len(s)
    ([1.0, 2.0, 3.0], 3)
    """

    __slots__ = ("_len", "_lists", "_maxes")

    def __init__(self, values: list[float] | None = None) -> None:
        self._lists: list[array[float]] = []
        self._maxes: list[float] = []
        self._len = 0
        for v in sorted(values or ()):
            self.add(v)

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[float]:
        return chain.from_iterable(self._lists)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SortedList) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def add(self, v: float) -> None:
        """Insert ``v``."""
        maxes = self._maxes
        self._len += 1
        if not maxes:
            self._lists.append(array("d", (v,)))
            maxes.append(v)
            return
        i = bisect_left(maxes, v)
        if i == len(maxes):
            i -= 1
            lst = self._lists[i]
            lst.append(v)
            maxes[i] = v
        else:
            lst = self._lists[i]
            insort(lst, v)
        if len(lst) > 2 * _LOAD:
            half = lst[_LOAD:]
            del lst[_LOAD:]
            self._lists.insert(i + 1, half)
            maxes[i] = lst[-1]
            maxes.insert(i + 1, half[-1])

    def remove(self, v: float) -> None:
        """Remove one occurrence of ``v`` (``ValueError`` if absent)."""
        maxes = self._maxes
        i = bisect_left(maxes, v)
        if i == len(maxes):
            raise ValueError(f"{v!r} not in SortedList")
        lst = self._lists[i]
        j = bisect_left(lst, v)
        if lst[j] != v:
            raise ValueError(f"{v!r} not in SortedList")
        del lst[j]
        self._len -= 1
        if lst:
            maxes[i] = lst[-1]
        else:
            del self._lists[i]
            del maxes[i]

    def __getitem__(self, k: int) -> float:
        """The ``k``-th smallest value (0-based, non-negative)."""
        if not 0 <= k < self._len:
            raise IndexError(k)
        for lst in self._lists:
            if k < len(lst):
                return lst[k]
            k -= len(lst)
        raise IndexError(k)  # pragma: no cover

    def clear(self) -> None:
        """Remove everything."""
        self._lists.clear()
        self._maxes.clear()
        self._len = 0

    def update(self, other: SortedList) -> None:
        """Add every value of ``other``."""
        merged = sorted(chain(self, other))
        self.clear()
        for k in range(0, len(merged), _LOAD):
            chunk = array("d", merged[k : k + _LOAD])
            self._lists.append(chunk)
            self._maxes.append(chunk[-1])
        self._len = len(merged)

    def to_array(self) -> npt.NDArray[np.float64]:
        """Sorted values as a float64 array."""
        if not self._lists:
            return np.empty(0, dtype=np.float64)
        return np.concatenate([np.frombuffer(b, dtype=np.float64) for b in self._lists])
