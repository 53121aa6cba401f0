"""Pair an inference request event with its response event by the event id.

The serving platform's logger sends the two separately, in either order, possibly from
different threads, possibly one of them never. A pending half waits ``ttl_s`` seconds
(at most ``max_pending`` of them, the oldest evicted first); what times out or is
evicted is counted, never silently dropped. A half seen twice (a logger retry) counts
as a duplicate and is ignored.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Half", "Pair", "Pairing"]

Kind = Literal["request", "response"]


@dataclass(frozen=True, slots=True)
class Half:
    """One logged event: a request's feature rows or a response's predictions."""

    event_id: str
    kind: Kind
    rows: list[Any]
    model: str | None
    time_ms: float | None


@dataclass(frozen=True, slots=True)
class Pair:
    request: Half
    response: Half


class Pairing:
    """Thread-safe matching of request and response halves.

    Examples
    --------
    >>> pairing = Pairing(ttl_s=60)
    >>> pairing.offer(Half("e1", "response", [1], "iris", None)) is None
    True
    >>> pairing.offer(Half("e1", "request", [{"x": 1.0}], "iris", None)).response.rows
    [1]
    >>> pairing.pending, pairing.duplicates, pairing.unpaired
    (0, 0, 0)
    """

    def __init__(
        self,
        ttl_s: float = 300.0,
        max_pending: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s, self.max_pending, self._clock = ttl_s, max_pending, clock
        self._waiting: OrderedDict[str, tuple[float, Half]] = OrderedDict()
        self._done: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        self.duplicates = 0
        self.unpaired = 0
        """Halves whose other half did not come within ``ttl_s`` (or were evicted)."""

    @property
    def pending(self) -> int:
        return len(self._waiting)

    def offer(self, half: Half) -> Pair | None:
        """The completed pair when ``half`` completes one, else ``None`` (it waits)."""
        now = self._clock()
        with self._lock:
            self._expire(now)
            if half.event_id in self._done:
                self.duplicates += 1
                return None
            waiting = self._waiting.get(half.event_id)
            if waiting is None:
                self._waiting[half.event_id] = (now, half)
                if len(self._waiting) > self.max_pending:
                    self._waiting.popitem(last=False)
                    self.unpaired += 1
                return None
            other = waiting[1]
            if other.kind == half.kind:
                self.duplicates += 1
                return None
            del self._waiting[half.event_id]
            self._done[half.event_id] = now
        if half.kind == "request":
            return Pair(half, other)
        return Pair(other, half)

    def expire(self) -> None:
        """Count and forget halves past their TTL (``offer`` does it too)."""
        with self._lock:
            self._expire(self._clock())

    def _expire(self, now: float) -> None:
        cutoff = now - self.ttl_s
        waiting, done = self._waiting, self._done
        while waiting:
            first = next(iter(waiting.values()))
            if first[0] > cutoff:
                break
            waiting.popitem(last=False)
            self.unpaired += 1
        # Completed ids are remembered as long as a retry of one of their halves may come.
        while done and (next(iter(done.values())) <= cutoff or len(done) > self.max_pending):
            done.popitem(last=False)
