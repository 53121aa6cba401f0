"""Online statistic protocol and one generic sliding-window wrapper.

Every statistic in :mod:`streams.stats` follows the river convention: ``update(live, cand)``
adds one paired observation and returns ``self``, ``revert(live, cand)`` removes one that was
added earlier, ``get()`` returns a frozen :class:`~streams.stats.results.TestResult`,
``merge(other)`` folds another partial state of the same kind into this one and ``reset()``
clears it.  :class:`Window` turns any of them into a count-based or time-based sliding window by
remembering what it added and reverting it when it falls out of the window.
"""

from __future__ import annotations

import copy
from collections import deque
from typing import Any, Protocol, Self, runtime_checkable

from streams.stats.results import TestResult

__all__ = ["Statistic", "Window"]


@runtime_checkable
class Statistic(Protocol):
    """What every online test provides."""

    n: int

    def update(self, x: Any, y: Any) -> Self: ...

    def revert(self, x: Any, y: Any) -> Self: ...

    def get(self) -> TestResult: ...

    def merge(self, other: Self) -> Self: ...

    def reset(self) -> Self: ...


class Window:
    """Count-based or time-based sliding window around any :class:`Statistic`.

    Parameters
    ----------
    stat : Statistic
        The wrapped statistic (owned by the window from now on).
    size : int, optional
        Keep the last ``size`` observations.
    seconds : float, optional
        Keep observations whose timestamp is within ``seconds`` of the newest one (or of the
        ``now`` passed to :meth:`expire`).  Timestamps are in seconds, non-decreasing.

    Examples
    --------
    >>> from streams.stats.paired import PairedT
    >>> w = Window(PairedT(), size=3)
    >>> for live, cand in [(1.0, 1.5), (2.0, 2.1), (3.0, 3.9), (4.0, 4.2)]:
    ...     _ = w.update(live, cand)
    >>> w.n, w.get().window
    (3, 'count:3')
    """

    __slots__ = ("_buf", "seconds", "size", "stat")

    def __init__(self, stat: Statistic, size: int | None = None, seconds: float | None = None):
        if (size is None) == (seconds is None):
            raise ValueError("Window needs exactly one of size= or seconds=")
        if size is not None and size < 1:
            raise ValueError(f"window size must be >= 1, got {size}")
        if seconds is not None and not seconds > 0:
            raise ValueError(f"window seconds must be > 0, got {seconds}")
        self.stat = stat
        self.size = size
        self.seconds = seconds
        self._buf: deque[tuple[Any, Any, float]] = deque()

    @property
    def n(self) -> int:
        """Observations currently in the window."""
        return len(self._buf)

    @property
    def label(self) -> str:
        """``"count:N"`` or ``"time:Ss"``."""
        return f"count:{self.size}" if self.size is not None else f"time:{self.seconds:g}s"

    def update(self, x: Any, y: Any, t: float = 0.0) -> Self:
        """Add one observation at time ``t`` (seconds) and evict what left the window."""
        buf = self._buf
        buf.append((x, y, t))
        self.stat.update(x, y)
        if self.size is not None:
            if len(buf) > self.size:
                ox, oy, _ = buf.popleft()
                self.stat.revert(ox, oy)
        else:
            self.expire(t)
        return self

    def expire(self, now: float) -> Self:
        """Evict observations older than ``now - seconds`` (no-op for count windows)."""
        if self.seconds is not None:
            cutoff = now - self.seconds
            buf = self._buf
            while buf and buf[0][2] <= cutoff:
                ox, oy, _ = buf.popleft()
                self.stat.revert(ox, oy)
        return self

    def get(self) -> TestResult:
        """Result of the wrapped statistic on the current window."""
        return self.stat.get().with_window(self.label)

    def reset(self) -> Self:
        """Empty the window."""
        self._buf.clear()
        self.stat.reset()
        return self

    def clone(self) -> Window:
        """An empty window of the same kind around a fresh copy of the statistic."""
        return Window(copy.deepcopy(self.stat).reset(), size=self.size, seconds=self.seconds)
