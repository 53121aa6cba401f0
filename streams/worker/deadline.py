"""Run model calls in a helper thread with a per-call deadline.

Python cannot stop a thread, so a call that misses its deadline is *abandoned*: the
caller gets :class:`Timeout` and goes on, the stuck call finishes (or not) in a daemon
thread nobody waits for. A model used with a deadline should therefore be safe to call
from a new thread while an abandoned call may still be running in an old one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["Timeout", "run_each", "run_once"]

T = TypeVar("T")
R = TypeVar("R")


class Timeout(Exception):
    """A model call missed its deadline."""


class _Job(Generic[T, R]):
    """Calls ``function`` on each item in turn, publishing its progress for the waiter."""

    __slots__ = (
        "cancelled",
        "done",
        "error",
        "function",
        "items",
        "lock",
        "results",
        "started",
    )

    def __init__(self, function: Callable[[T], R], items: Sequence[T]) -> None:
        self.function = function
        self.items = items
        self.results: list[R] = []
        self.error: BaseException | None = None
        self.started = time.perf_counter()
        """When the call now running (``items[len(results)]``) started."""
        self.cancelled = False
        self.lock = threading.Lock()
        self.done = threading.Event()

    def __call__(self) -> None:
        try:
            for item in self.items:
                result = self.function(item)
                with self.lock:
                    if self.cancelled:
                        return
                    self.results.append(result)
                    self.started = time.perf_counter()
        except BaseException as exc:  # handed to the waiting thread
            self.error = exc
        finally:
            self.done.set()

    def cancel_if_late(self, timeout: float) -> list[R] | None:
        """Cancel when the running call is past its deadline: the results so far."""
        with self.lock:
            if self.done.is_set() or time.perf_counter() - self.started < timeout:
                return None
            self.cancelled = True
            return list(self.results)


def _start(job: _Job[T, R]) -> None:
    threading.Thread(target=job, name="shadow-model-call", daemon=True).start()


def run_once(function: Callable[[], R], timeout: float) -> R:
    """``function()`` in a helper thread; :class:`Timeout` after ``timeout`` seconds.

    Examples
    --------
    >>> run_once(lambda: 41 + 1, timeout=1.0)
    42
    """
    job: _Job[None, R] = _Job(lambda _: function(), [None])
    _start(job)
    if not job.done.wait(timeout):
        job.cancelled = True
        raise Timeout(f"no answer within {timeout * 1000:.0f} ms")
    if job.error is not None:
        raise job.error
    return job.results[0]


def run_each(
    function: Callable[[T], R],
    items: Sequence[T],
    timeout: float,
    on_timeout: Callable[[T], R],
) -> list[R]:
    """``[function(item) for item in items]`` with a deadline of ``timeout`` s per call.

    One helper thread runs the calls one after another; when a call misses its deadline
    ``on_timeout(item)`` stands in for its result and the remaining items continue in a
    fresh thread. Exceptions of ``function`` propagate (callers catch them inside it).

    Examples
    --------
    >>> import time
    >>> def slow_on_two(x):
    ...     if x == 2:
    ...         time.sleep(0.5)
    ...     return x * 10
    >>> run_each(slow_on_two, [1, 2, 3], timeout=0.1, on_timeout=lambda x: -1)
    [10, -1, 30]
    """
    results: list[R] = []
    remaining = list(items)
    while remaining:
        job = _Job(function, remaining)
        _start(job)
        finished: list[R] | None = None
        while finished is None:
            if job.done.wait(max(job.started + timeout - time.perf_counter(), 0.0)):
                if job.error is not None:
                    raise job.error
                finished = job.results
            else:
                finished = job.cancel_if_late(timeout)
        results += finished
        if len(finished) < len(remaining):  # cancelled: the next item is the stuck one
            results.append(on_timeout(remaining[len(finished)]))
        remaining = remaining[len(finished) + 1 :]
    return results
