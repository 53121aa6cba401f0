"""What running a model costs its process: memory, load time, model size.

CPU time is measured per model call where the call runs (the worker's
:mod:`streams.worker.model`: the thread CPU time of the call, a batched call's shared
equally by its inputs; the hook's ``track()``); this module keeps the process-wide
figures that the predictions carry (Prediction schema version 2), read from ``/proc`` at
most once a second: a shadow worker's on every candidate prediction, the serving app's
on live predictions when the hook measures cost.

The model's in-memory size is estimated as the growth of the process's resident memory
while it loaded (what a replica pays for holding it), so it includes the libraries its
loading imported; the load time is wall time. Both are figures of this process, as
``shadow-eval status`` and the report show them per worker.
"""

from __future__ import annotations

import os
import resource
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["MIB", "ProcessCost", "WorkerCost", "current_rss_mb", "load_measured", "peak_rss_mb"]

MIB = 1024.0 * 1024.0
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
SAMPLE_EVERY_S = 1.0
T = TypeVar("T")


def current_rss_mb() -> float | None:
    """This process's resident memory now, in MiB (``None`` where ``/proc`` is missing)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE / MIB
    except (OSError, ValueError, IndexError):
        return None


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB (``ru_maxrss``: KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@dataclass(frozen=True, slots=True)
class ProcessCost:
    """One reading of the worker process, as its predictions carry it."""

    worker: str
    rss_mb: float | None
    peak_mb: float
    load_s: float | None
    model_mb: float | None


def load_measured(load: Callable[[], T]) -> tuple[T, float, float | None]:
    """``(load(), seconds it took, MiB the process grew by)``.

    Examples
    --------
    >>> model, seconds, grew = load_measured(lambda: bytearray(64 * 1024 * 1024))
    >>> len(model), seconds >= 0.0, grew is None or grew > 32
    (67108864, True, True)
    """
    before = current_rss_mb()
    started = time.perf_counter()
    loaded = load()
    seconds = time.perf_counter() - started
    after = current_rss_mb()
    grew = None if before is None or after is None else max(after - before, 0.0)
    return loaded, seconds, grew


class WorkerCost:
    """A process's cost figures (a worker's, or the serving app's), read again at most
    every ``every`` seconds.

    Examples
    --------
    >>> cost = WorkerCost(load_s=1.5, model_mb=80.0, worker="host:1")
    >>> reading = cost.sample()
    >>> reading.worker, reading.load_s, reading.peak_mb > 0
    ('host:1', 1.5, True)
    """

    def __init__(
        self,
        *,
        load_s: float | None = None,
        model_mb: float | None = None,
        worker: str | None = None,
        every: float = SAMPLE_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.load_s = load_s
        self.model_mb = model_mb
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}"
        self._every = every
        self._clock = clock
        self._due = float("-inf")
        self._last: ProcessCost | None = None

    def sample(self) -> ProcessCost:
        """The latest reading (read again when it is older than ``every`` seconds)."""
        now = self._clock()
        if self._last is None or now >= self._due:
            self._due = now + self._every
            rss = current_rss_mb()
            # The kernel updates ru_maxrss lazily: it may lag the RSS just read.
            peak = max(peak_rss_mb(), rss or 0.0)
            self._last = ProcessCost(self.worker, rss, peak, self.load_s, self.model_mb)
        return self._last
