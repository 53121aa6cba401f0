"""Each shadow worker process's rate, CPU share and memory, from its recent predictions.

Every candidate prediction (Prediction schema version 2) names the worker process that
made it and carries its CPU time and the process's memory; ``shadow-eval status`` reads
the last records of the shadow predictions topic and sums them up per worker. Workers of
a version before the cost fields show as ``-``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from streams.records import Prediction, Role

__all__ = ["WorkerCostRow", "worker_rows"]


@dataclass(frozen=True, slots=True)
class WorkerCostRow:
    """One worker process, over the predictions of it that were read.

    ``rate``: predictions per second between its first and last one read; ``cpu_share``:
    the model calls' CPU time over that wall time (1.0 = one core busy); ``rss_mb`` and
    ``peak_mb``: its latest reading.
    """

    model: str
    version: str
    worker: str
    predictions: int
    rate: float | None
    cpu_share: float | None
    rss_mb: float | None
    peak_mb: float | None

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


class _Tally:
    __slots__ = ("cpu_ms", "first_ms", "last", "n", "timed")

    def __init__(self, first: Prediction) -> None:
        self.n, self.cpu_ms, self.timed = 0, 0.0, 0
        self.first_ms, self.last = first.timestamp_ms, first

    def add(self, p: Prediction) -> None:
        self.n += 1
        self.first_ms = min(self.first_ms, p.timestamp_ms)
        if p.timestamp_ms >= self.last.timestamp_ms:
            self.last = p
        if p.cpu_ms is not None:
            self.cpu_ms += p.cpu_ms
            self.timed += 1


def worker_rows(records: Iterable[object]) -> list[WorkerCostRow]:
    """Per (model, version, worker): what its candidate predictions among ``records`` say.

    Examples
    --------
    >>> ps = [Prediction("r", "m", "v2", Role.SHADOW, t, 1.0, cpu_ms=50.0, worker="w:1",
    ...                  worker_rss_mb=300.0, worker_peak_mb=320.0) for t in range(0, 2001, 100)]
    >>> row, = worker_rows(ps)
    >>> row.predictions, row.rate, row.cpu_share, row.rss_mb
    (21, 10.0, 0.5, 300.0)
    """
    tallies: dict[tuple[str, str, str], _Tally] = {}
    for p in records:
        if not isinstance(p, Prediction) or p.role is not Role.SHADOW:
            continue
        key = (p.model, p.version, p.worker or "-")
        tally = tallies.get(key)
        if tally is None:
            tally = tallies[key] = _Tally(p)
        tally.add(p)
    rows = []
    for (model, version, worker), t in sorted(tallies.items()):
        seconds = (t.last.timestamp_ms - t.first_ms) / 1000.0
        # n predictions span n - 1 intervals; the CPU of those n - 1 fits in that time.
        rate = (t.n - 1) / seconds if seconds > 0 else None
        cpu = t.cpu_ms * (t.n - 1) / t.n / 1000.0 / seconds if seconds > 0 and t.timed else None
        rows.append(
            WorkerCostRow(
                model, version, worker, t.n, rate, cpu, t.last.worker_rss_mb, t.last.worker_peak_mb
            )
        )
    return rows
