"""The delivery experiment of the downstream tests, and functions that fail on known
requests (to test error accounting)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streams.downstream.delivery import delivery_kpis, promise_slot

LONG_TRIP_KM = 11.0
"""decide() raises for trips longer than this."""
SLOW_PREP_MINUTES = 19.0
"""the KPI function raises for orders whose preparation took longer than this."""


def decide(inputs: Mapping[str, Any], predicted: Any) -> int:
    if inputs["distance_km"] > LONG_TRIP_KM:
        raise ValueError("no courier for long trips")
    return promise_slot(inputs, predicted)


def kpis(inputs: Mapping[str, Any], promised: Any, actual: Any) -> dict[str, float]:
    if inputs["prep_minutes"] > SLOW_PREP_MINUTES:
        raise KeyError("kitchen report missing")
    return delivery_kpis(inputs, promised, actual)


REAL = ("streams.downstream.delivery:promise_slot", "streams.downstream.delivery:delivery_kpis")
FLAKY = ("tests.unit.join.flaky:decide", "tests.unit.join.flaky:kpis")

DELIVERY_EXPERIMENT = """
[[experiments]]
name = "{name}"
model = "eta"
live_version = "v1"
candidate = "v2"
task = "regression"
primary_metric = "{primary}"
decision = "{decision}"
kpis = ["{kpis}"]
min_samples = 200

[[experiments.metrics]]
name = "late"
higher_is_better = false
binary = true

[[experiments.metrics]]
name = "idle_minutes"
higher_is_better = false

[[experiments.rules]]
name = "later-deliveries"
metric = "late"
direction = "worse"
severity = "critical"

[[experiments.rules]]
name = "better-mae"
metric = "abs_error"
direction = "better"
severity = "info"
"""
