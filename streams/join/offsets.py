"""Which offsets the join may commit: the contiguous frontier of what it has processed.

faust commits the offsets of acknowledged messages, and before a partition's first commit
it commits past messages it skipped during a rebalance (they are never delivered again).
The join therefore turns faust's acks off for its topics and commits this frontier itself,
after each batch is durable. A hole (a skipped offset below processed ones) holds the
frontier back and tells the agent to re-read from there. Pure: no Kafka import.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Generic, TypeVar

__all__ = ["OffsetTracker"]

P = TypeVar("P", bound=Hashable)


class OffsetTracker(Generic[P]):
    """Per partition: the next offset whose record has not been processed yet.

    Examples
    --------
    >>> tracker = OffsetTracker({"p0": 10})
    >>> for offset in (10, 11, 13):
    ...     tracker.done("p0", offset)
    >>> tracker.frontier["p0"], tracker.holes()
    (12, {'p0': 12})
    >>> tracker.done("p0", 12)
    >>> tracker.frontier["p0"], tracker.holes()
    (14, {})
    """

    def __init__(self, starts: Mapping[P, int] | None = None) -> None:
        self.frontier: dict[P, int] = dict(starts or {})
        self._ahead: dict[P, set[int]] = {}
        self._committed: dict[P, int] = {}

    def reset(self, starts: Mapping[P, int]) -> None:
        """After a rebalance: reading resumes at these offsets (the group's commits)."""
        self.frontier = dict(starts)
        self._ahead.clear()
        self._committed = dict(starts)

    def done(self, partition: P, offset: int) -> None:
        """The record at ``offset`` is processed and durable."""
        frontier = self.frontier.get(partition)
        if frontier is None:
            return  # not a partition of this assignment
        if offset < frontier:
            return  # a redelivered record, already counted
        if offset > frontier:
            self._ahead.setdefault(partition, set()).add(offset)
            return
        ahead = self._ahead.get(partition, set())
        frontier += 1
        while frontier in ahead:
            ahead.discard(frontier)
            frontier += 1
        self.frontier[partition] = frontier

    def holes(self) -> dict[P, int]:
        """Partitions with processed records beyond a gap: re-read from the gap."""
        return {p: self.frontier[p] for p, ahead in self._ahead.items() if ahead}

    def to_commit(self) -> dict[P, int]:
        """Frontiers that moved since the last call (what to commit now)."""
        moved = {p: f for p, f in self.frontier.items() if self._committed.get(p) != f}
        self._committed.update(moved)
        return moved
