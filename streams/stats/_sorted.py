"""A sorted multiset of floats that sorts lazily: O(1) add and remove, numpy merges at reads.

Windows add and remove a value per update but read the sorted values once per evaluation, so
:meth:`SortedList.add` and :meth:`SortedList.remove` only note the change; the first read after
them merges every pending change into a sorted float64 array (one stable sort, one vectorised
multiset difference).  Pending changes are merged early once they outnumber the values held,
which bounds memory and keeps the amortised cost per update at O(log n).

Equal values keep the order they were added in and a removal takes the earliest added of the
equal values present, as an insertion sort would.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import numpy.typing as npt

__all__ = ["SortedList"]

_MIN_PENDING = 1024
_EMPTY: npt.NDArray[np.float64] = np.empty(0, dtype=np.float64)
_EMPTY.flags.writeable = False


class SortedList:
    """Multiset of floats (float64), read in sorted order.

    A removal of a value not held raises ``ValueError`` when the pending changes are merged
    (at the next read, or early merge), not in :meth:`remove` itself.

    Examples
    --------
    >>> s = SortedList([3.0, 1.0, 2.0, 2.0])
    >>> s.remove(2.0)
    >>> list(s), len(s), s[2]
    ([1.0, 2.0, 3.0], 3, 3.0)
    """

    __slots__ = ("_adds", "_dels", "_limit", "_sorted")

    def __init__(self, values: list[float] | None = None) -> None:
        self._sorted = _EMPTY
        self._adds: list[float] = []
        self._dels: list[float] = []
        self._limit = _MIN_PENDING
        self.add_many(values or ())

    def __len__(self) -> int:
        return self._sorted.size + len(self._adds) - len(self._dels)

    def __iter__(self) -> Iterator[float]:
        return iter(self.to_array().tolist())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SortedList) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __getstate__(self) -> npt.NDArray[np.float64]:
        return self.to_array()

    def __setstate__(self, state: npt.NDArray[np.float64]) -> None:
        self._adds, self._dels = [], []
        self._settle(np.array(state, dtype=np.float64))

    def add(self, v: float) -> None:
        """Insert ``v``."""
        adds = self._adds
        adds.append(v)
        if len(adds) > self._limit:
            self._merge()

    def remove(self, v: float) -> None:
        """Remove one occurrence of ``v`` (``ValueError`` at the merge if absent)."""
        self._dels.append(v)

    def add_many(self, values: Iterable[float]) -> None:
        """Insert every one of ``values``, in their order."""
        adds = self._adds
        adds.extend(values)
        if len(adds) > self._limit:
            self._merge()

    def remove_many(self, values: Iterable[float]) -> None:
        """Remove one occurrence of each of ``values``, in their order."""
        self._dels.extend(values)

    def __getitem__(self, k: int) -> float:
        """The ``k``-th smallest value (0-based, non-negative)."""
        if not 0 <= k < len(self):
            raise IndexError(k)
        return float(self.to_array()[k])

    def clear(self) -> None:
        """Remove everything."""
        self._sorted = _EMPTY
        self._adds.clear()
        self._dels.clear()
        self._limit = _MIN_PENDING

    def update(self, other: SortedList) -> None:
        """Add every value of ``other``."""
        self.add_many(other.to_array().tolist())

    def to_array(self) -> npt.NDArray[np.float64]:
        """Sorted values as a float64 array (do not modify it)."""
        if self._adds or self._dels:
            self._merge()
        return self._sorted

    def _merge(self) -> None:
        held = self._sorted
        if self._adds:
            held = np.concatenate((held, np.array(self._adds, dtype=np.float64)))
            held.sort(kind="stable")  # equal values stay in the order they came
            self._adds.clear()
        if self._dels:
            gone = np.sort(np.array(self._dels, dtype=np.float64))
            self._dels.clear()
            # The k-th removal of a value takes the k-th of its equal values held.
            first = np.searchsorted(held, gone, "left")
            at = first + (np.arange(gone.size) - np.searchsorted(gone, gone, "left"))
            inside = at < held.size
            found = np.zeros(gone.size, dtype=bool)
            found[inside] = held[at[inside]] == gone[inside]
            if not found.all():
                self._settle(held)
                raise ValueError(f"{float(gone[~found][0])!r} not in SortedList")
            held = np.delete(held, at)
        self._settle(held)

    def _settle(self, held: npt.NDArray[np.float64]) -> None:
        held.flags.writeable = False  # to_array() hands it out without a copy
        self._sorted = held
        self._limit = max(_MIN_PENDING, held.size)
