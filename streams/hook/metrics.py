"""The hook's counters: a frozen snapshot, and their Prometheus export.

Nothing is updated per record on the Prometheus side: a collector reads the publishers'
counters when the registry is scraped, so metrics cost the request path nothing.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Protocol

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["OUTCOMES", "HookCounters", "register_publisher"]

OUTCOMES = (
    "published",
    "delivered",
    "dropped",
    "failed",
    "unencodable",
    "too_large",
    "sampled_out",
    "errors",
)
"""The ``outcome`` label values of ``shadow_hook_records_total``."""


@dataclass(frozen=True, slots=True)
class HookCounters:
    """A consistent-enough snapshot of one publisher's record counts.

    ``published`` records were accepted; each of them ends up ``delivered``, ``failed``
    (Kafka refused it or it timed out), ``unencodable``, ``too_large`` (over the producer's
    ``message.max.bytes``, never sent) or ``dropped`` (the producer's own
    queue was full), or is still ``in_flight``. ``dropped`` also counts records refused
    because the buffer was full or the publisher closed; ``sampled_out`` counts records
    left out by sampling; ``errors`` counts unexpected exceptions inside the hook.

    Examples
    --------
    >>> HookCounters(published=3, delivered=2, in_flight=1).as_dict()["delivered"]
    2
    """

    published: int = 0
    delivered: int = 0
    dropped: int = 0
    failed: int = 0
    unencodable: int = 0
    too_large: int = 0
    sampled_out: int = 0
    errors: int = 0
    in_flight: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class _Counted(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def counters(self) -> HookCounters: ...


class _HookCollector(Collector):
    """Reports every live publisher registered with one registry."""

    def __init__(self) -> None:
        self.publishers: weakref.WeakSet[_Counted] = weakref.WeakSet()

    def collect(self) -> Iterator[Metric]:
        records = CounterMetricFamily(
            "shadow_hook_records",
            "Records handled by the shadow-eval producer hook, by outcome.",
            labels=["publisher", "outcome"],
        )
        in_flight = GaugeMetricFamily(
            "shadow_hook_in_flight",
            "Records accepted by the hook and not yet delivered or given up.",
            labels=["publisher"],
        )
        for publisher in list(self.publishers):
            counts = publisher.counters
            for outcome in OUTCOMES:
                records.add_metric([publisher.name, outcome], getattr(counts, outcome))
            in_flight.add_metric([publisher.name], counts.in_flight)
        yield records
        yield in_flight

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily("shadow_hook_records", "", labels=["publisher", "outcome"])
        yield GaugeMetricFamily("shadow_hook_in_flight", "", labels=["publisher"])


_collectors: weakref.WeakKeyDictionary[CollectorRegistry, _HookCollector] = (
    weakref.WeakKeyDictionary()
)
_lock = threading.Lock()


def register_publisher(publisher: _Counted, registry: CollectorRegistry | None = None) -> None:
    """Export ``publisher``'s counters from ``registry`` (the global one by default).

    One collector per registry serves every publisher, labelled by ``publisher.name``,
    so several publishers can share a registry.
    """
    registry = REGISTRY if registry is None else registry
    with _lock:
        collector = _collectors.get(registry)
        if collector is None:
            collector = _HookCollector()
            registry.register(collector)
            _collectors[registry] = collector
        collector.publishers.add(publisher)
