"""An experiments file shared by the report and traffic tests."""

from __future__ import annotations

from streams.join.experiments import ExperimentsFile

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
