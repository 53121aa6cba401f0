"""Counters of one shadow worker, its status line and its Prometheus export.

The worker loop bumps plain integers (cheap on the hot path); a prometheus_client
collector reads them when scraped, so several workers in one process (tests, the demo)
can each have their own registry without clashing on metric names.
"""

from __future__ import annotations

import bisect
import statistics
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

__all__ = ["BATCH_BUCKETS", "WorkerCollector", "WorkerMetrics", "serve_metrics"]

BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Upper bounds (seconds) of the batch latency histogram."""

_COUNTERS = {
    "consumed": "Input messages consumed.",
    "produced": "Candidate predictions delivered.",
    "errors": "Delivered predictions that carry a model error or timeout.",
    "dead_lettered": "Bad inputs delivered to the dead-letter topic.",
    "skipped": "Inputs of other models, consumed and not scored.",
    "delivery_failures": "Messages the producer finally failed to deliver.",
    "lost": "Inputs deleted (retention) before the worker read them: offsets out of range, "
    "each gap alerted (rule data_loss).",
    "timeouts": "Model calls abandoned at their deadline (their inputs: timeout predictions).",
    "model_cpu_seconds": "CPU time of the model calls (each in the thread that ran it).",
    "model_restarts": "Model processes killed and replaced (--isolate process).",
}
_GAUGES = {
    "hung_threads": "Model threads stuck in a call past its deadline (not replaced).",
    "stalled": "1 while every model thread is stuck and the worker takes no inputs.",
    "memory_bytes": "Resident memory of the worker process (its latest reading).",
    "peak_memory_bytes": "Peak resident memory of the worker process so far.",
}


@dataclass
class WorkerMetrics:
    """What one worker has done so far.

    Examples
    --------
    >>> m = WorkerMetrics(model="churn", version="v2")
    >>> m.consumed += 3; m.produced += 3
    >>> m.observe_batch(0.004)
    >>> m.status_line()
    'worker churn@v2: consumed=3 produced=3 errors=0 dlq=0 skipped=0 lag=0 batch_p50=4.0ms'
    """

    model: str
    version: str
    consumed: int = 0
    produced: int = 0
    errors: int = 0
    dead_lettered: int = 0
    skipped: int = 0
    delivery_failures: int = 0
    lost: int = 0
    timeouts: int = 0
    model_cpu_seconds: float = 0.0
    model_restarts: int = 0
    threads: int = 0
    """Size of the model call pool (0: calls without a deadline, no pool)."""
    hung_threads: int = 0
    stalled: int = 0
    memory_bytes: float = 0.0
    peak_memory_bytes: float = 0.0
    lag: int = 0
    batches: int = 0
    batch_seconds_sum: float = 0.0
    bucket_counts: list[int] = field(default_factory=lambda: [0] * (len(BATCH_BUCKETS) + 1))
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=1000))

    def count_lost(self, topic: str, records: int) -> None:
        """Inputs lost unread (:class:`~streams.kafka.offset_loss.OffsetLoss`)."""
        self.lost += records

    def observe_batch(self, seconds: float) -> None:
        """Record how long one batch took from consumed to handed to the producer."""
        self.batches += 1
        self.batch_seconds_sum += seconds
        self.bucket_counts[bisect.bisect_left(BATCH_BUCKETS, seconds)] += 1
        self.recent.append(seconds)

    def batch_p50_ms(self) -> float:
        """Median of the last (up to) 1000 batch latencies, in milliseconds."""
        return statistics.median(self.recent) * 1000.0 if self.recent else 0.0

    def status_line(self) -> str:
        """The one-line status the worker logs every few seconds."""
        line = (
            f"worker {self.model}@{self.version}: consumed={self.consumed} "
            f"produced={self.produced} errors={self.errors} dlq={self.dead_lettered} "
            f"skipped={self.skipped} lag={self.lag} batch_p50={self.batch_p50_ms():.1f}ms"
        )
        if self.timeouts or self.hung_threads:
            line += f" timeouts={self.timeouts} hung={self.hung_threads}/{self.threads}"
        if self.model_restarts:
            line += f" model_restarts={self.model_restarts}"
        if self.lost:
            line += f" LOST={self.lost} (out of retention)"
        return line + (" STALLED: every model thread is stuck" if self.stalled else "")


class WorkerCollector(Collector):
    """Exports a :class:`WorkerMetrics` as ``shadow_worker_*`` metrics.

    Examples
    --------
    >>> from prometheus_client import CollectorRegistry, generate_latest
    >>> registry = CollectorRegistry()
    >>> registry.register(WorkerCollector(WorkerMetrics(model="churn", version="v2")))
    >>> b'shadow_worker_consumed_total{model="churn",version="v2"} 0.0' in generate_latest(registry)
    True
    """

    def __init__(self, metrics: WorkerMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        labels = ["model", "version"]
        values = [m.model, m.version]
        for name, help_text in _COUNTERS.items():
            counter = CounterMetricFamily(f"shadow_worker_{name}", help_text, labels=labels)
            counter.add_metric(values, getattr(m, name))
            yield counter
        for name, help_text in _GAUGES.items():
            gauge = GaugeMetricFamily(f"shadow_worker_{name}", help_text, labels=labels)
            gauge.add_metric(values, getattr(m, name))
            yield gauge
        lag = GaugeMetricFamily(
            "shadow_worker_consumer_lag",
            "Inputs not yet consumed (assigned partitions).",
            labels=labels,
        )
        lag.add_metric(values, m.lag)
        yield lag
        histogram = HistogramMetricFamily(
            "shadow_worker_batch_seconds",
            "Time from consuming a micro-batch to handing its predictions to the producer.",
            labels=labels,
        )
        cumulative, buckets = 0, []
        for bound, count in zip((*BATCH_BUCKETS, float("inf")), m.bucket_counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        histogram.add_metric(values, buckets, m.batch_seconds_sum)
        yield histogram


def serve_metrics(metrics: WorkerMetrics, port: int, addr: str = "0.0.0.0") -> CollectorRegistry:
    """Serve ``metrics`` on ``http://addr:port/metrics`` from a daemon thread, with the
    standard ``process_*`` metrics of this process (CPU seconds, resident memory...)."""
    registry = CollectorRegistry()
    registry.register(WorkerCollector(metrics))
    ProcessCollector(registry=registry)
    start_http_server(port, addr=addr, registry=registry)
    return registry
