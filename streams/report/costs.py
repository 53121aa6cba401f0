"""What each candidate costs to run, beside live, from its latest snapshot.

The figures are the built-in cost metrics of the join (``cpu_ms``, ``worker_memory_mb``,
``load_s``; Prediction schema version 2), each measured where the prediction was made:
live's in the serving app (the hook, ``measure_cost=True``), a candidate's in its shadow
worker (batched, another process, maybe another machine). A candidate's CPU and memory
are therefore what it costs *in its worker*, not what it would cost inside the serving
app; the ratio to live compares the two places as they are.

Estimated cores: the candidate's mean CPU ms per prediction times the paired requests
per second observed over the run (the first to the latest snapshot), over 1000.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from streams.records import MetricResult, MetricsSnapshot
from streams.report.model import RunResult, find_result

__all__ = ["COST_METRICS", "CostSummary", "cost_summary", "request_rate"]

COST_METRICS = ("cpu_ms", "worker_memory_mb", "load_s")


@dataclass(frozen=True, slots=True)
class CostSummary:
    """A candidate's cost figures (``None``: not measured on both sides).

    Examples
    --------
    >>> CostSummary(4.1, 9.0, 4.0, 0.8, 420.0, 3.1, 2.5, 5.0).text()
    'CPU 4.1 ms p50 / 9 p99 (4.0x live), 0.8 cores; 420 MiB per replica (3.1x); load 2.5 s (5.0x)'
    """

    cpu_p50_ms: float | None = None
    cpu_p99_ms: float | None = None
    cpu_ratio: float | None = None
    """Candidate / live mean CPU ms per prediction."""
    cores: float | None = None
    memory_mb: float | None = None
    memory_ratio: float | None = None
    load_s: float | None = None
    load_ratio: float | None = None

    @property
    def measured(self) -> bool:
        return any(v is not None for v in asdict(self).values())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        """One line; ``-`` when nothing was measured."""
        parts = []
        if self.cpu_p50_ms is not None:
            cpu = f"CPU {self.cpu_p50_ms:.2g} ms p50"
            if self.cpu_p99_ms is not None:
                cpu += f" / {self.cpu_p99_ms:.2g} p99"
            cpu += _ratio(self.cpu_ratio, " live")
            if self.cores is not None:
                cpu += f", {self.cores:.2g} cores"
            parts.append(cpu)
        if self.memory_mb is not None:
            parts.append(f"{self.memory_mb:.0f} MiB per replica{_ratio(self.memory_ratio)}")
        if self.load_s is not None:
            parts.append(f"load {self.load_s:.2g} s{_ratio(self.load_ratio)}")
        return "; ".join(parts) or "-"


def _ratio(value: float | None, what: str = "") -> str:
    return "" if value is None else f" ({value:.1f}x{what})"


def _sides(result: MetricResult | None) -> tuple[float | None, float | None]:
    if result is None or result.n == 0:
        return None, None
    return result.live_value, result.candidate_value


def _over(candidate: float | None, live: float | None) -> float | None:
    if candidate is None or live is None or live <= 0.0:
        return None
    return candidate / live


def request_rate(snapshots: list[MetricsSnapshot]) -> float | None:
    """Paired requests per second between the first and the latest snapshot.

    Examples
    --------
    >>> snap = lambda t, n: MetricsSnapshot("e", "m", "v1", "v2", t, {"paired": n}, (), "", "")
    >>> request_rate([snap(0, 0), snap(10_000, 500)])
    50.0
    """
    if len(snapshots) < 2:
        return None
    first, last = snapshots[0], snapshots[-1]
    seconds = (last.timestamp_ms - first.timestamp_ms) / 1000.0
    paired = last.counts.get("paired", 0) - first.counts.get("paired", 0)
    return paired / seconds if seconds > 0 and paired > 0 else None


def cost_summary(run: RunResult, experiment: str) -> CostSummary:
    """The cost figures of ``experiment``'s candidate in its latest snapshot."""
    snapshots = run.snapshots[experiment]
    final = snapshots[-1]
    _, p50 = _sides(find_result(final, "cpu_ms", "quantile_ratio_p50"))
    _, p99 = _sides(find_result(final, "cpu_ms", "quantile_ratio_p99"))
    live_cpu, cpu = _sides(find_result(final, "cpu_ms"))
    rate = request_rate(snapshots)
    live_memory, memory = _sides(find_result(final, "worker_memory_mb"))
    live_load, load = _sides(find_result(final, "load_s"))
    return CostSummary(
        p50,
        p99,
        _over(cpu, live_cpu),
        None if cpu is None or rate is None else cpu * rate / 1000.0,
        memory,
        _over(memory, live_memory),
        load,
        _over(load, live_load),
    )
