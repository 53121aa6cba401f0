"""Prometheus metrics of the join agent (one registry per agent, so tests can run several)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector

__all__ = ["JoinMetrics"]


class JoinMetrics:
    """Counters and gauges exported on ``--metrics-port``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        if registry is None:  # its own registry: with the standard process_* metrics
            ProcessCollector(registry=self.registry)
        self.events_in = Counter(
            "shadow_join_events_in",
            "Records consumed by stage 1, by topic.",
            ["topic"],
            registry=self.registry,
        )
        self.outcomes = Counter(
            "shadow_join_records",
            "Stage 1 records by outcome (accepted, duplicate, unknown_model, unknown_version).",
            ["outcome"],
            registry=self.registry,
        )
        self.join_events = Counter(
            "shadow_join_emitted",
            "Join events emitted by stage 1, by kind and expiry reason.",
            ["kind", "reason"],
            registry=self.registry,
        )
        self.judged_duplicates = Counter(
            "shadow_join_judge_duplicates",
            "Join events stage 2 dropped as re-emitted duplicates.",
            registry=self.registry,
        )
        self.clock_skew = Counter(
            "shadow_join_clock_skew",
            "Join events whose time stage 2 clamped for its windows (outside "
            "[now - label_ttl_s, now + max_skew_s]), by experiment.",
            ["experiment"],
            registry=self.registry,
        )
        self.invalid = Counter(
            "shadow_join_invalid",
            "Predictions and labels the validity gate kept from the statistics, by experiment, "
            'version ("label" for labels) and reason.',
            ["experiment", "version", "reason"],
            registry=self.registry,
        )
        self.dead_lettered = Counter(
            "shadow_join_dead_lettered",
            "Records sent to the dead-letter topic, by reason.",
            ["error_type"],
            registry=self.registry,
        )
        self.lost = Counter(
            "shadow_join_lost",
            "Records deleted (retention) before the join read them, by topic: offsets out "
            "of range, each gap alerted (rule data_loss).",
            ["topic"],
            registry=self.registry,
        )
        self.pending = Gauge(
            "shadow_join_pending_requests",
            "Requests held in stage 1 state on this worker.",
            registry=self.registry,
        )
        self.lag = Gauge(
            "shadow_join_lag",
            "Records not yet processed, by source topic (summed over owned partitions).",
            ["topic"],
            registry=self.registry,
        )
        self.decision = Gauge(
            "shadow_join_verdict",
            "Current verdict per experiment: -1 reject, 0 continue, 1 promote.",
            ["experiment"],
            registry=self.registry,
        )

    def count_lost(self, topic: str, records: int) -> None:
        """Records of ``topic`` lost unread (:class:`~streams.kafka.offset_loss.OffsetLoss`)."""
        self.lost.labels(topic).inc(records)

    @staticmethod
    def count(counter: Counter, amounts: Mapping[Any, int]) -> None:
        """Add a batch's tallies to a labelled counter, one call per label value."""
        for labels, amount in amounts.items():
            values = labels if isinstance(labels, tuple) else (labels,)
            counter.labels(*values).inc(amount)
