"""The commit frontier: contiguous processed offsets only; holes are reported."""

from __future__ import annotations

from streams.join.offsets import OffsetTracker


def test_the_frontier_never_passes_an_unprocessed_offset() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    tracker.reset({"a": 0, "b": 100})
    for offset in (0, 1, 2, 5, 6):
        tracker.done("a", offset)
    assert tracker.to_commit() == {"a": 3}
    assert tracker.holes() == {"a": 3}
    for offset in (3, 4):
        tracker.done("a", offset)
    assert tracker.frontier["a"] == 7 and tracker.holes() == {}
    assert tracker.to_commit() == {"a": 7}
    assert tracker.to_commit() == {}


def test_redeliveries_and_foreign_partitions_change_nothing() -> None:
    tracker: OffsetTracker[str] = OffsetTracker({"a": 10})
    tracker.done("a", 3)  # already committed before: a redelivery
    tracker.done("z", 0)  # not in this assignment
    assert tracker.frontier == {"a": 10}
    assert tracker.holes() == {}


def test_reset_forgets_what_was_ahead() -> None:
    tracker: OffsetTracker[str] = OffsetTracker({"a": 0})
    tracker.done("a", 5)
    tracker.reset({"a": 2})
    assert tracker.holes() == {} and tracker.frontier == {"a": 2}
    assert tracker.to_commit() == {}
