"""Throughput of join stage 2 (:class:`Judge`), pure: no broker.  Prints ONE JSON object.

Three experiment shapes, each fed its own seeded stream of PAIRED, LABELLED and EXPIRED
events (made by :class:`Pairing` beforehand, so only stage 2 is timed):

* ``binary``: one binary classifier, default rules (the shape of ``bench/join.py``);
* ``regression_segments``: a regressor tracked per country and device (capped at 2 values
  per key), a 60 s time window, guardrails and five rules, two of them per segment;
* ``multiclass``: four classes, a count window, seven rules over five metrics.

``us_per_event`` is the median over rounds of the mean microseconds per ``Judge.apply``
(a fresh Judge each round, the whole stream each time); ``report_ms`` the median time of one
``Judge.report`` at the end of the stream (which also feeds the windows' batch statistics
everything they were owed since the start); ``us_per_event_reporting`` the same as
``us_per_event`` with a report every 1,000 events counted in (as the agent reports every few
seconds: windows feed their batch statistics, and tests sort their samples, when read).

Usage: ``python bench/judge.py --json [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streams.codec import Codec
from streams.join.experiments import ExperimentsFile
from streams.join.judge import Judge
from streams.join.slot_state import Slot
from streams.join.slots import JoinOutcome, SlotPairing
from streams.records import GroundTruth, JoinEvent, Prediction
from streams.synthetic import (
    CandidateSpec,
    Request,
    classification_requests,
    regression_requests,
)

JOIN = """
[join]
pair_ttl_s = 5
label_ttl_s = 30
"""

BINARY = """
[[experiments]]
name = "binary"
model = "churn"
live_version = "v1"
candidate = "v2"
task = "binary"
primary_metric = "correct"
"""

REGRESSION = """
[[experiments]]
name = "regression_segments"
model = "eta"
live_version = "v1"
candidate = "v2"
task = "regression"
primary_metric = "abs_error"
guardrails = [
  {metric = "latency_ms", margin = 0.3, relative = true},
  {metric = "error", margin = 0.01},
]
segments = ["country", "device"]
max_segment_values = 2
window_seconds = 60

[[experiments.rules]]
name = "mae-by-country"
metric = "abs_error"
test = "paired_t"
segments = ["country"]

[[experiments.rules]]
name = "mse"
metric = "squared_error"
test = "wilcoxon"
window = 500
direction = "different"

[[experiments.rules]]
name = "p95-latency"
metric = "latency_ms"
test = "quantile_ratio"
min_effect = 0.05

[[experiments.rules]]
name = "prediction-shift"
metric = "prediction"
test = "ks"
segments = ["device"]

[[experiments.rules]]
name = "mae"
metric = "abs_error"
segments = ["country", "device"]
"""

MULTICLASS = """
[[experiments]]
name = "multiclass"
model = "topic"
live_version = "v1"
candidate = "v2"
task = "multiclass"
primary_metric = "correct"
guardrails = [{metric = "log_loss", margin = 0.05}]
segments = ["device"]
window = 5000

[[experiments.rules]]
name = "accuracy"
metric = "correct"
test = "mcnemar"
fire_after = 2

[[experiments.rules]]
name = "classes"
metric = "predicted_class"
test = "chi2"

[[experiments.rules]]
name = "agreement"
metric = "predicted_class"
test = "agreement"
min_effect = 0.05
segments = ["device"]

[[experiments.rules]]
name = "stability"
metric = "predicted_class"
test = "psi"

[[experiments.rules]]
name = "log-loss"
metric = "log_loss"
test = "sign"

[[experiments.rules]]
name = "latency"
metric = "latency_ms"
test = "mannwhitney"

[[experiments.rules]]
name = "errors"
metric = "error"
test = "two_proportions"
segments = ["device"]
"""


def requests(shape: str, n: int) -> Iterator[Request]:
    """The seeded traffic of one shape (label delays up to 2 s, a few failed predictions)."""
    if shape == "binary":
        live, cand = CandidateSpec("v1", 0.9), CandidateSpec("v2", 0.88)
        return classification_requests(n, live, [cand], seed=1, max_label_delay_ms=2000)
    if shape == "regression_segments":
        live = CandidateSpec("v1", error_scale=2.0, error_rate=0.01)
        cand = CandidateSpec("v2", error_scale=1.8, bias=0.3, latency_ms=24.0)
        return regression_requests(n, live, [cand], seed=1, max_label_delay_ms=2000)
    live = CandidateSpec("v1", 0.8, error_rate=0.01)
    cand = CandidateSpec("v2", 0.77)
    classes = ("a", "b", "c", "d")
    return classification_requests(
        n, live, [cand], seed=1, model="topic", classes=classes, max_label_delay_ms=2000
    )


def join_events(exps: ExperimentsFile, reqs: Iterator[Request]) -> list[JoinEvent]:
    """Stage 1 over the traffic in event time; 2% of predictions and labels never arrive."""
    rng = random.Random(2)
    timed: list[tuple[int, Prediction | GroundTruth]] = []
    for r in reqs:
        for record in (r.live, *r.candidates, r.label):
            if rng.random() >= 0.02:
                timed.append((record.timestamp_ms, record))
    timed.sort(key=lambda t: t[0])
    codec = Codec()
    pairing = SlotPairing.for_codec(exps, codec)
    store: dict[str, Slot] = {}

    def keep(rid: str, kept: Slot | JoinOutcome | None) -> None:
        if kept is None:
            store.pop(rid, None)
        elif isinstance(kept, Slot):
            store[rid] = kept

    next_expiry = timed[0][0] + 1000
    for now, record in timed:
        if now >= next_expiry:
            for rid, state in list(store.items()):
                keep(rid, pairing.expire(rid, state, now))
            next_expiry = now + 1000
        state = store.get(record.request_id)
        if isinstance(record, GroundTruth):
            keep(record.request_id, pairing.add_label(state, record, now))
        else:
            raw = codec.encode(record)
            keep(record.request_id, pairing.add_prediction(state, record, raw, now))
    return [codec.decode_as(JoinEvent, e.value) for e in pairing.take_events()]


def measure(toml: str, shape: str, n: int, rounds: int) -> dict[str, Any]:
    exps = ExperimentsFile.parse(JOIN + toml)
    events = join_events(exps, requests(shape, n))
    per_event, report_ms, reporting = [], [], []
    for _ in range(rounds):
        judge = Judge(exps)
        apply = judge.apply
        t0 = time.perf_counter()
        for event in events:
            apply(event)
        per_event.append((time.perf_counter() - t0) / len(events) * 1e6)
        t0 = time.perf_counter()
        judge.report(shape, events[-1].timestamp_ms)
        report_ms.append((time.perf_counter() - t0) * 1000)
        judge = Judge(exps)
        apply = judge.apply
        t0 = time.perf_counter()
        for i, event in enumerate(events, 1):
            apply(event)
            if i % 1000 == 0:
                judge.report(shape, event.timestamp_ms)
        reporting.append((time.perf_counter() - t0) / len(events) * 1e6)
    return {
        "events": len(events),
        "us_per_event": round(statistics.median(per_event), 3),
        "us_per_event_rounds": [round(t, 3) for t in per_event],
        "report_ms": round(statistics.median(report_ms), 3),
        "us_per_event_reporting": round(statistics.median(reporting), 3),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="join stage 2 (Judge) throughput")
    ap.add_argument("--json", action="store_true", help="print one JSON object (default)")
    ap.add_argument("--quick", action="store_true", help="5,000 requests per shape, 3 rounds")
    args = ap.parse_args(argv)
    n, rounds = (5000, 3) if args.quick else (20_000, 5)
    t0 = time.perf_counter()
    shapes = {"binary": BINARY, "regression_segments": REGRESSION, "multiclass": MULTICLASS}
    out: dict[str, Any] = {
        "requests_per_shape": n,
        "rounds": rounds,
        "shapes": {shape: measure(toml, shape, n, rounds) for shape, toml in shapes.items()},
    }
    out["seconds"] = round(time.perf_counter() - t0, 2)
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
