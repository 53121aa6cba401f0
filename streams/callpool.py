"""A fixed pool of threads that run user calls under a deadline, and never grows.

Python cannot stop a thread, so a call that misses its deadline is *abandoned*: its
caller gets a stand-in result (``on_timeout``) at once, and the slot whose thread is
stuck in the call is **hung**: it takes no more work, and it is not replaced, so a model
that hangs on many inputs cannot make the process leak threads. A hung slot comes back
by itself when its call finally returns (its late result is dropped). When every slot is
hung the pool runs nothing: :meth:`CallPool.map` hands back the items it could not run
(``None`` in their place) and the caller decides what to do (the worker stops taking
inputs until a slot is free again, :mod:`streams.worker.loop`).

The calls of one :meth:`~CallPool.map` are spread over the idle slots in contiguous
chunks; a slot runs its chunk one call after another. A model used with a pool is
therefore called from several threads at once, and from a new thread while an abandoned
call may still run in an old one: a model that is not thread-safe wants ``size=1``, or a
child process (``--isolate process``).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from queue import SimpleQueue
from typing import Any, Generic, TypeVar, cast

__all__ = ["CallPool", "PoolExhausted", "Timeout"]

T = TypeVar("T")
R = TypeVar("R")


class Timeout(Exception):
    """A call missed its deadline."""


class PoolExhausted(Exception):
    """Every slot of the pool is stuck in a call past its deadline: nothing can run."""


class _Job(Generic[T, R]):
    """Calls ``function`` on each item in turn, publishing its progress for the waiter."""

    __slots__ = ("cancelled", "done", "error", "function", "items", "lock", "results",
                 "started", "wake")  # fmt: skip

    def __init__(
        self, function: Callable[[T], R], items: Sequence[T], wake: threading.Event
    ) -> None:
        self.function = function
        self.items = items
        self.results: list[R] = []
        self.error: BaseException | None = None
        self.started = time.perf_counter()
        """When the call now running (``items[len(results)]``) started."""
        self.cancelled = False
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.wake = wake

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
            self.wake.set()

    def cancel_if_late(self, timeout: float, now: float) -> list[R] | None:
        """Cancel when the running call is past its deadline: the results so far."""
        with self.lock:
            if self.done.is_set() or now - self.started < timeout:
                return None
            self.cancelled = True
            return list(self.results)


class _Slot:
    """One thread of the pool; ``job`` is what it runs now (None: idle)."""

    __slots__ = ("job", "jobs", "thread")

    def __init__(self, name: str) -> None:
        self.job: _Job[Any, Any] | None = None
        self.jobs: SimpleQueue[_Job[Any, Any] | None] = SimpleQueue()
        self.thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while (job := self.jobs.get()) is not None:
            job()
            self.job = None  # idle again, also after a call that was abandoned

    @property
    def hung(self) -> bool:
        job = self.job
        return job is not None and job.cancelled


class CallPool:
    """``size`` threads running calls with a deadline of ``timeout`` seconds each.

    Parameters
    ----------
    size
        How many threads; the pool never starts another.
    timeout
        Deadline of one call, in seconds.
    name
        Name of the threads (``<name>-<i>``), as thread dumps show them.

    Examples
    --------
    >>> import time
    >>> pool = CallPool(2, timeout=0.1)
    >>> def slow_on_two(x):
    ...     if x == 2:
    ...         time.sleep(0.5)
    ...     return x * 10
    >>> pool.map(slow_on_two, [1, 2, 3], on_timeout=lambda x: -1)
    [10, -1, 30]
    >>> pool.hung  # the thread stuck on 2 is not replaced until its call returns
    1
    >>> pool.call(lambda: 42)
    42
    >>> pool.close()
    """

    def __init__(self, size: int, timeout: float, *, name: str = "shadow-model-call") -> None:
        if size < 1:
            raise ValueError(f"a call pool needs at least one thread, got size={size}")
        if not timeout > 0:
            raise ValueError(f"a call pool needs a positive deadline, got timeout={timeout}")
        self.size = size
        self.timeout = timeout
        self.timeouts = 0
        """Calls abandoned at their deadline so far."""
        self._slots = [_Slot(f"{name}-{i}") for i in range(size)]

    @property
    def hung(self) -> int:
        """Slots stuck in a call past its deadline now."""
        return sum(slot.hung for slot in self._slots)

    @property
    def exhausted(self) -> bool:
        """Every slot is hung: nothing can run until one of their calls returns."""
        return all(slot.hung for slot in self._slots)

    def call(self, function: Callable[[], R]) -> R:
        """``function()`` in a slot; :class:`Timeout` past the deadline, exceptions propagate.

        Raises
        ------
        PoolExhausted
            No slot is free (every one is hung).
        """
        missed = _Missed()
        (result,) = self.map(lambda _: function(), [None], on_timeout=lambda _: missed)
        if result is None:
            raise PoolExhausted(f"all {self.size} threads are stuck in calls")
        if isinstance(result, _Missed):
            raise Timeout(f"no answer within {self.timeout * 1000:.0f} ms")
        return cast(R, result)

    def map(
        self, function: Callable[[T], R], items: Sequence[T], on_timeout: Callable[[T], R]
    ) -> list[R | None]:
        """``[function(item) for item in items]``, each call under the deadline.

        A call past its deadline gives ``on_timeout(item)``; an item that could not run
        because every slot is hung gives ``None``. Exceptions of ``function`` propagate
        (callers catch them inside it).
        """
        results: list[R | None] = [None] * len(items)
        pending = list(range(len(items)))
        running: list[tuple[_Job[T, R], list[int]]] = []
        wake = threading.Event()
        while pending or running:
            idle = [slot for slot in self._slots if slot.job is None]
            if pending and idle:
                size = math.ceil(len(pending) / len(idle))
                for slot in idle:
                    chunk, pending = pending[:size], pending[size:]
                    if not chunk:
                        break
                    job = _Job(function, [items[i] for i in chunk], wake)
                    slot.job = job
                    slot.jobs.put(job)
                    running.append((job, chunk))
            if not running:
                break  # every slot hung: the rest cannot run now
            earliest = min(job.started for job, _ in running) + self.timeout
            wake.wait(max(earliest - time.perf_counter(), 0.0))
            wake.clear()
            pending = self._collect(running, results, on_timeout) + pending
        return results

    def _collect(
        self,
        running: list[tuple[_Job[T, R], list[int]]],
        results: list[R | None],
        on_timeout: Callable[[T], R],
    ) -> list[int]:
        """Take finished and late jobs out of ``running``; the items to run again."""
        again: list[int] = []
        now = time.perf_counter()
        for entry in list(running):
            job, chunk = entry
            if job.done.is_set():
                if job.error is not None:
                    raise job.error
                finished = job.results
            else:
                late = job.cancel_if_late(self.timeout, now)
                if late is None:
                    continue
                finished = late
            running.remove(entry)
            for index, result in zip(chunk, finished, strict=False):
                results[index] = result
            if len(finished) < len(chunk):  # cancelled: the next item is the stuck one
                stuck = chunk[len(finished)]
                results[stuck] = on_timeout(job.items[len(finished)])
                self.timeouts += 1
                again += chunk[len(finished) + 1 :]
        return again

    def close(self) -> None:
        """Let the idle threads end (hung ones end when their call returns)."""
        for slot in self._slots:
            slot.jobs.put(None)


class _Missed:
    """The stand-in result of a call past its deadline in :meth:`CallPool.call`."""
