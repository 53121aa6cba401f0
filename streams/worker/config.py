"""Options of one shadow worker (what ``shadow-eval worker`` exposes as flags)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["WorkerConfig"]


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """How a :class:`~streams.worker.loop.ShadowWorker` consumes, batches and reports.

    Examples
    --------
    >>> WorkerConfig(name="churn").group_for("v2")
    'shadow-worker.churn.v2'
    """

    name: str = "model"
    """The candidate's name in group ids, metrics and logs."""
    only_model: str | None = None
    """Score only inputs whose ``ModelInput.model`` is this; others are skipped."""
    group_id: str | None = None
    """Consumer group; ``shadow-worker.<name>.<version>`` by default."""
    batch_size: int = 500
    batch_ms: float = 50.0
    start: Literal["earliest", "latest"] = "earliest"
    """Where a new consumer group starts reading the inputs topic."""
    session_timeout_ms: int = 45_000
    status_every: float = 10.0
    """Seconds between status log lines; 0 disables them."""
    drain_timeout: float = 30.0
    """Seconds to wait for outstanding deliveries at shutdown and rebalance."""
    consumer_overrides: Mapping[str, Any] = field(default_factory=dict)
    producer_overrides: Mapping[str, Any] = field(default_factory=dict)

    def group_for(self, version: str) -> str:
        return self.group_id or f"shadow-worker.{self.name}.{version}"
