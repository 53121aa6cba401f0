"""The model call pool: bounded threads, deadlines, hung slots not replaced."""

from __future__ import annotations

import threading
import time

import pytest

from streams.callpool import CallPool, PoolExhausted, Timeout


def _pool_threads() -> int:
    return sum(t.name.startswith("pool-test") for t in threading.enumerate())


def test_a_hung_call_is_a_timeout_and_its_thread_is_not_replaced() -> None:
    release = threading.Event()
    pool = CallPool(4, timeout=0.05, name="pool-test")

    def model(x: int) -> int:
        if x % 100 == 7:  # 1% of the inputs hang until released
            release.wait()
        return x

    try:
        first = pool.map(model, range(200), on_timeout=lambda x: -1)
        assert [i for i, r in enumerate(first) if r == -1] == [7, 107]
        assert [r for r in first if r != -1] == [x for x in range(200) if x % 100 != 7]
        assert pool.hung == 2 and pool.timeouts == 2 and _pool_threads() == 4
        # Two more hangs use up the other two threads: what is left is not run.
        second = pool.map(model, range(300, 500), on_timeout=lambda x: -1)
        assert second.count(-1) == 2 and pool.exhausted and _pool_threads() == 4
        unrun = [300 + i for i, r in enumerate(second) if r is None]
        assert unrun and all(r in (-1, None) or r == 300 + i for i, r in enumerate(second))
        with pytest.raises(PoolExhausted):
            pool.call(lambda: 1)
        release.set()  # the stuck calls return: their threads serve again
        deadline = time.monotonic() + 5
        while pool.hung and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pool.hung == 0 and pool.map(model, unrun, on_timeout=lambda x: -1) == unrun
    finally:
        release.set()
        pool.close()


def test_calls_spread_over_the_threads_and_errors_propagate() -> None:
    pool = CallPool(4, timeout=1.0, name="pool-test")
    try:
        started = time.perf_counter()
        assert pool.map(lambda x: time.sleep(0.02) or x, range(20), lambda x: -1) == list(range(20))
        assert time.perf_counter() - started < 0.3  # 20 x 20 ms on 4 threads
        with pytest.raises(ZeroDivisionError):
            pool.map(lambda x: 1 // x, [1, 0, 2], lambda x: -1)
        with pytest.raises(Timeout):
            CallPool(1, 0.02).call(lambda: time.sleep(0.2))
        with pytest.raises(ValueError, match="at least one thread"):
            CallPool(0, 1.0)
    finally:
        pool.close()
