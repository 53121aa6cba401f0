"""Online statistic protocol and one generic sliding-window wrapper.

Every statistic in :mod:`streams.stats` follows the river convention: ``update(live, cand)``
adds one paired observation and returns ``self``, ``revert(live, cand)`` removes one that was
added earlier, ``get()`` returns a frozen :class:`~streams.stats.results.TestResult`,
``merge(other)`` folds another partial state of the same kind into this one and ``reset()``
clears it.  :class:`Window` turns any of them into a count-based or time-based sliding window by
remembering what it added and reverting it when it falls out of the window.

A statistic whose state depends only on the multiset of pairs it holds (counts, sorted
samples) also provides ``update_many(xs, ys)`` and ``revert_many(xs, ys)``
(:class:`BatchStatistic`).  A window feeds those in batches when it is read rather than pair
by pair: it keeps the pairs anyway, and is updated far more often than read.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Iterable, Sequence
from itertools import islice
from typing import Any, Protocol, Self, runtime_checkable

from streams.stats.results import TestResult, reject_nonfinite

__all__ = ["BatchStatistic", "Statistic", "Window", "share_state"]


@runtime_checkable
class Statistic(Protocol):
    """What every online test provides."""

    @property
    def n(self) -> int:
        """Pairs the statistic currently holds."""

    def update(self, x: Any, y: Any) -> Self: ...

    def revert(self, x: Any, y: Any) -> Self: ...

    def get(self) -> TestResult: ...

    def merge(self, other: Self) -> Self: ...

    def reset(self) -> Self: ...


@runtime_checkable
class BatchStatistic(Statistic, Protocol):
    """A statistic whose state is a function of the multiset of pairs it holds, so that
    pairs may be added and removed late and in batches: ``update_many(xs, ys)`` equals
    ``update(x, y)`` for each pair in turn, ``revert_many`` likewise, and a pair may be
    reverted in the same batch as it was added (its ``update_many`` call coming first)."""

    def update_many(self, xs: Sequence[Any], ys: Sequence[Any]) -> Self: ...

    def revert_many(self, xs: Sequence[Any], ys: Sequence[Any]) -> Self: ...


_STATE = ("_fed", "_gone_xs", "_gone_ys", "_ts", "_xs", "_ys", "seconds", "size", "stats")


class Window:
    """Count-based or time-based sliding window around one or more :class:`Statistic`.

    Every statistic is fed the same pairs: one buffer evicts for all of them (the monitor
    keeps one window per metric around the tests it reports on that metric).

    Parameters
    ----------
    stat, *more : Statistic
        The wrapped statistics (owned by the window from now on: read them through it, or
        after :meth:`expire`, which brings the batch statistics up to date).
    size : int, optional
        Keep the last ``size`` observations.
    seconds : float, optional
        Keep observations whose timestamp is within ``seconds`` of the newest one (or of the
        ``now`` passed to :meth:`expire`).  Timestamps are in seconds.  One out of order
        is held as the newest before it (the held times never decrease, so eviction never
        waits behind a later one); :meth:`expire` brings every held time after ``now`` back
        to ``now``: the window evicts by its caller's clock, and an observation stamped a
        year ahead leaves it ``seconds`` after the next :meth:`expire`, not a year later.

    Examples
    --------
    >>> from streams.stats.paired import PairedT, SignTest
    >>> w = Window(PairedT(), size=3)
    >>> for live, cand in [(1.0, 1.5), (2.0, 2.1), (3.0, 3.9), (4.0, 4.2)]:
    ...     _ = w.update(live, cand)
    >>> w.n, w.get().window
    (3, 'count:3')
    >>> both = Window(PairedT(), SignTest(), seconds=60.0)
    >>> [r.test for r in both.update(1.0, 1.5, t=0.0).results()]
    ['paired_t', 'sign']
    """

    __slots__ = (
        "_batched",
        "_fed",
        "_gone_xs",
        "_gone_ys",
        "_reverts",
        "_ts",
        "_updates",
        "_xs",
        "_ys",
        "seconds",
        "size",
        "stat",
        "stats",
    )

    def __init__(
        self,
        stat: Statistic,
        *more: Statistic,
        size: int | None = None,
        seconds: float | None = None,
    ) -> None:
        if (size is None) == (seconds is None):
            raise ValueError("Window needs exactly one of size= or seconds=")
        if size is not None and size < 1:
            raise ValueError(f"window size must be >= 1, got {size}")
        if seconds is not None and not seconds > 0:
            raise ValueError(f"window seconds must be > 0, got {seconds}")
        self.stat = stat
        self.stats = (stat, *more)
        self.size = size
        self.seconds = seconds
        # The pairs held, oldest first, as flat columns rather than one tuple per pair: a
        # third of the memory, and nothing for the garbage collector to track.  Timestamps
        # are kept by time windows only.
        self._xs: deque[Any] = deque()
        self._ys: deque[Any] = deque()
        self._ts: deque[float] = deque()
        # The batch statistics hold the oldest ``_fed`` pairs held (the others are fed to
        # them when they are read) and the pairs evicted since then.
        self._fed = 0
        self._gone_xs: list[Any] = []
        self._gone_ys: list[Any] = []
        self._bind()

    def _bind(self) -> None:
        # Bound methods, resolved once: update() runs for every pair of every metric.
        self._batched = tuple(s for s in self.stats if isinstance(s, BatchStatistic))
        eager = [s for s in self.stats if not isinstance(s, BatchStatistic)]
        self._updates = tuple(s.update for s in eager)
        self._reverts = tuple(s.revert for s in eager)

    def __getstate__(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _STATE}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)
        self.stat = self.stats[0]
        self._bind()

    @property
    def n(self) -> int:
        """Observations currently in the window."""
        return len(self._xs)

    @property
    def label(self) -> str:
        """``"count:N"`` or ``"time:Ss"``."""
        return f"count:{self.size}" if self.size is not None else f"time:{self.seconds:g}s"

    def update(self, x: Any, y: Any, t: float = 0.0) -> Self:
        """Add one observation at time ``t`` (seconds) and evict what left the window.

        A numeric pair with a NaN or infinite value (or whose difference squared overflows)
        raises :class:`~streams.stats.results.NonFiniteError` before anything is held."""
        if x.__class__ is not str:
            d = y - x
            q = d * d
            if q - q:  # nan unless x, y, d and d**2 are finite
                reject_nonfinite(x, y)
        xs, ys = self._xs, self._ys
        xs.append(x)
        ys.append(y)
        for update in self._updates:
            update(x, y)
        size = self.size
        if size is not None:
            if len(xs) > size:
                self._evict()
            return self
        ts = self._ts
        if ts and t < ts[-1]:
            t = ts[-1]
        ts.append(t)
        cutoff = t - self.seconds  # type: ignore[operator]  # a time window: seconds is set
        while ts and ts[0] <= cutoff:  # as expire(t), inlined: this runs for every pair
            ts.popleft()
            self._evict()
        return self

    def _evict(self) -> None:
        """Drop the oldest pair held."""
        x, y = self._xs.popleft(), self._ys.popleft()
        for revert in self._reverts:
            revert(x, y)
        if self._fed:
            self._fed -= 1
            self._gone_xs.append(x)
            self._gone_ys.append(y)

    def _feed_batches(self) -> None:
        """Bring the batch statistics up to date (before they are read)."""
        if not self._batched:
            return  # then nothing is ever fed to them, nor owed
        fresh = len(self._xs) - self._fed
        if fresh:
            xs = list(islice(reversed(self._xs), fresh))[::-1]
            ys = list(islice(reversed(self._ys), fresh))[::-1]
            for s in self._batched:
                s.update_many(xs, ys)
            self._fed = len(self._xs)
        if self._gone_xs:
            for s in self._batched:
                s.revert_many(self._gone_xs, self._gone_ys)
            self._gone_xs, self._gone_ys = [], []

    def expire(self, now: float) -> Self:
        """Evict observations older than ``now - seconds`` (count windows: none) and bring
        every statistic up to date: read them after this, or through :meth:`get`."""
        if self.seconds is not None:
            cutoff = now - self.seconds
            ts = self._ts
            if ts and ts[-1] > now:  # held times ahead of the clock: now (rare, O(n))
                self._ts = ts = deque(min(t, now) for t in ts)
            while ts and ts[0] <= cutoff:
                ts.popleft()
                self._evict()
        self._feed_batches()
        return self

    def get(self) -> TestResult:
        """Result of the (first) wrapped statistic on the current window."""
        self._feed_batches()
        return self.stat.get().with_window(self.label)

    def results(self) -> tuple[TestResult, ...]:
        """Result of every wrapped statistic on the current window, in order."""
        self._feed_batches()
        label = self.label
        return tuple(s.get().with_window(label) for s in self.stats)

    def reset(self) -> Self:
        """Empty the window."""
        self._xs.clear()
        self._ys.clear()
        self._ts.clear()
        self._fed = 0
        self._gone_xs, self._gone_ys = [], []
        for s in self.stats:
            s.reset()
        return self

    def clone(self) -> Window:
        """An empty window of the same kind around fresh copies of the statistics."""
        fresh = [s.reset() for s in copy.deepcopy(self.stats)]
        return Window(*fresh, size=self.size, seconds=self.seconds)


def share_state(stats: Iterable[Statistic]) -> list[Statistic]:
    """The ones to feed, of statistics that are all going to be fed the same pairs.

    A statistic whose class names its state in ``shared_state`` holds the same state as any
    other of that state class fed the same pairs (and of equal ``share_key``, if it has one):
    KS, Mann-Whitney and quantile ratios keep the same two sorted samples, chi-square and PSI
    the same label counts, mixture SPRTs of the same burn-in the same sums.  Every one after
    the first of its state class is made to use the first one's state (one copy, same results)
    and is left out of the list returned, since feeding it as well would count every pair
    twice.  Only the returned statistics may be updated, reverted, merged or reset from then on.

    Examples
    --------
    >>> from streams.stats.twosample import QuantileRatio
    >>> p50, p95 = QuantileRatio(0.5), QuantileRatio(0.95)
    >>> fed = share_state([p50, p95])
    >>> for i in range(1, 101):
    ...     _ = fed[0].update(float(i), 2.0 * i)
    >>> len(fed), p95.n, p95.get().statistic
    (1, 100, 2.0)
    """
    out: list[Statistic] = []
    first: dict[tuple[type, object], Statistic] = {}
    for stat in stats:
        owner = next((c for c in type(stat).__mro__ if "shared_state" in vars(c)), None)
        if owner is None:
            out.append(stat)
            continue
        key = (owner, getattr(stat, "share_key", None))
        if key not in first:
            first[key] = stat
            out.append(stat)
        else:
            for name in vars(owner)["shared_state"]:
                setattr(stat, name, getattr(first[key], name))
    return out
