"""The in-flight buffer: exact capacity, drops, optional waiting."""

from __future__ import annotations

import threading
import time

import pytest

from streams.hook.buffer import InFlightBuffer


def test_capacity_is_exact_and_drops_are_counted() -> None:
    buf = InFlightBuffer[int](capacity=10)
    accepted = [buf.offer(i, 1) for i in range(25)]
    assert accepted == [True] * 10 + [False] * 15
    assert (buf.published, buf.dropped, buf.in_flight) == (10, 15, 10)
    assert buf.take() == list(range(10))
    assert buf.take() == []
    assert buf.in_flight == 10  # taken is not settled
    buf.settle(4)
    assert [buf.offer(i, 1) for i in range(5)] == [True] * 4 + [False]


def test_multi_record_items_need_room_for_all() -> None:
    buf = InFlightBuffer[str](capacity=5)
    assert buf.offer("a", 2) and buf.offer("b", 2)
    assert not buf.offer("c", 2)
    assert buf.offer("d", 1)
    assert (buf.published, buf.dropped) == (5, 2)


def test_drop_after_acceptance_frees_room() -> None:
    buf = InFlightBuffer[str](capacity=1)
    buf.offer("a", 1)
    buf.drop(1)
    assert (buf.in_flight, buf.dropped) == (0, 1)
    assert buf.offer("b", 1)


def test_block_timeout_waits_then_drops() -> None:
    buf = InFlightBuffer[int](capacity=1, block_timeout=0.1)
    buf.offer(0, 1)
    start = time.monotonic()
    assert not buf.offer(1, 1)
    assert 0.09 <= time.monotonic() - start < 1.0
    assert buf.dropped == 1


def test_block_timeout_succeeds_when_room_appears() -> None:
    buf = InFlightBuffer[int](capacity=1, block_timeout=5.0)
    buf.offer(0, 1)
    timer = threading.Timer(0.05, buf.settle, args=(1,))
    timer.start()
    start = time.monotonic()
    assert buf.offer(1, 1)
    assert time.monotonic() - start < 2.0
    timer.join()


def test_closed_buffer_refuses() -> None:
    buf = InFlightBuffer[int](capacity=3)
    buf.close()
    assert not buf.offer(1, 1)
    assert buf.dropped == 1


@pytest.mark.parametrize(("capacity", "block"), [(0, 0.0), (1, -1.0)])
def test_bad_arguments(capacity: int, block: float) -> None:
    with pytest.raises(ValueError):
        InFlightBuffer[int](capacity, block)
