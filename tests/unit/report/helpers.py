"""Experiments files and traffic shared by the report and traffic tests."""

from __future__ import annotations

import random

from streams.demo.experiments import delivery_experiment_toml, experiments_toml
from streams.demo.traffic import deliveries
from streams.downstream.delivery import train_eta_models
from streams.join.experiments import ExperimentsFile
from streams.records import GroundTruth, ModelInput, Prediction, Role

EXPERIMENTS = ExperimentsFile.parse(
    """
[join]
snapshot_every_s = 2
pair_ttl_s = 30
label_ttl_s = 60

[[experiments]]
name = "m"
model = "m"
live_version = "v1"
candidates = ["v2", "v3"]
task = "binary"
positive_class = "1"
primary_metric = "log_loss"
guardrails = [{ metric = "latency_ms", margin = 10.0 }]
min_samples = 100
segments = ["country"]

[[experiments.rules]]
name = "worse-log-loss"
metric = "log_loss"
direction = "worse"
severity = "critical"
"""
)


DELIVERY = ExperimentsFile.parse(
    experiments_toml("d", "v1", ["v2"]) + delivery_experiment_toml("eta", "v1", "v2")
)
"""The demo's experiments file: the diagnosis experiment and the delivery experiment."""


def delivery_records(n: int, *, seed: int = 0) -> list[ModelInput | Prediction | GroundTruth]:
    """``n`` delivery orders of the demo's stream as traffic: inputs, live, shadow, label.

    Orders 25 ms apart, the shadow answer 5 ms later, the label 0.2 to 3 s later.
    """
    live, early = train_eta_models(seed=0)
    rng = random.Random(seed)
    records: list[ModelInput | Prediction | GroundTruth] = []
    for i, order in enumerate(deliveries(n, seed=seed)):
        rid, ts, city = f"o{i}", i * 25, {"city": order.city}
        numeric = {k: v for k, v in order.features.items() if not isinstance(v, str)}
        records += [
            ModelInput(rid, "eta", ts, numeric, {"traffic": order.features["traffic"]}, city),
            Prediction(rid, "eta", "v1", Role.LIVE, ts, live.predict_one(order.features),
                       latency_ms=0.2, segments=city),
            Prediction(rid, "eta", "v2", Role.SHADOW, ts + 5, early.predict_one(order.features),
                       latency_ms=0.4),
            GroundTruth(rid, "eta", ts + rng.randint(200, 3000), order.actual_minutes),
        ]  # fmt: skip
    records.sort(key=lambda r: r.timestamp_ms)
    return records
