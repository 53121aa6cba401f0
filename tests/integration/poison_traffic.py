"""Good traffic with every kind of bad record mixed in, and the count of each kind.

Shared by ``tests/integration/test_poison.py`` and ``bench/poison.py``. The good requests
come from :func:`streams.synthetic.classification_requests` through the real hook; the
candidate is a real shadow worker running :func:`poisoned_worse` (5 in 100 inputs carry a
marker that makes it answer nonsense or raise). Bad records go straight to the topics
with a raw producer (murmur2 partitioner, as every producer of the per-request topics),
interleaved with the good ones. :class:`Plan` says how many of each kind went where, so a
test can demand an exact account of every record.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Producer

from streams.codec import Codec
from streams.hook import ShadowPublisher
from streams.kafka.config import client_config
from streams.records import GroundTruth, ModelInput, Prediction, Role
from streams.settings import Settings
from streams.synthetic import CandidateSpec, Request, classification_requests

EXPERIMENTS_TOML = """
[join]
pair_ttl_s = 600
label_ttl_s = 3600
expire_every_s = 1
snapshot_every_s = 1

[[experiments]]
name = "worse"
model = "churn"
live_version = "v1"
candidate = "v2"
task = "binary"
classes = ["0", "1"]
positive_class = "1"
primary_metric = "correct"
"""
LIVE = CandidateSpec("v1", 0.90)
WORSE = CandidateSpec("v2", 0.65)
BAD_PROBABILITIES = {"1": 0.9, "0": 0.9}
CANDIDATE_FAULTS = ("nan", "unknown", "badprob", "raise")
"""What the candidate does on an input marked ``_poison``: its prediction is NaN, an
unknown class, a probability vector summing to 1.8, or it raises (an error prediction)."""
LIVE_FAULTS = {"nan": math.nan, "unknown": "maybe"}
LABEL_FAULTS = {"nan": math.nan, "unknown": "7"}
_REASON = {"nan": "nonfinite", "unknown": "unknown_class", "badprob": "bad_probabilities"}
HUGE = 1_000_100
"""Bytes of an oversized input: over the worker's limit, under the broker's 1,048,588."""


def poisoned_worse(features: dict[str, Any]) -> Any:
    """The worse candidate, answering nonsense on inputs marked ``_poison``."""
    fault = features.get("_poison")
    if fault == "nan":
        return math.nan
    if fault == "unknown":
        return "maybe"
    if fault == "badprob":
        return dict(BAD_PROBABILITIES)
    if fault == "raise":
        raise ValueError("poisoned input\nsecond line of the message")
    return str(features["_worse"])


@dataclass
class Plan:
    """What was produced: good requests, and bad records by ``(topic role, kind)``."""

    good: int = 0
    """Requests with inputs, a live prediction and a label, none of them bad."""
    requests: int = 0
    """Every request served through the hook (good ones and those with a bad side)."""
    produced: Counter[str] = field(default_factory=Counter)
    """Records produced per topic role: inputs, live, shadow, labels, events."""
    bad: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Records produced straight to a topic role, by the dead letter or counter they
    must end in (``undecodable``, ``too_large``, ``unknown_model``, ...)."""
    invalid: Counter[str] = field(default_factory=Counter)
    """Predictions and labels the validity gate must count: ``invalid:<version>:<reason>``."""
    candidate_errors: int = 0
    """Inputs on which the candidate raised: error predictions."""
    clean: list[Request] = field(default_factory=list)
    """The requests with nothing bad: the verdict without bad records judges these."""

    def inject(self, role: str, kind: str, count: int = 1) -> None:
        self.bad[(role, kind)] += count
        self.produced[role] += count

    @property
    def injected(self) -> int:
        return sum(self.bad.values())


class _Raw:
    """A plain producer for the bad records (and allowed the oversized ones)."""

    def __init__(self, settings: Settings) -> None:
        config = {"partitioner": "murmur2_random", "message.max.bytes": 1_048_000}
        self.producer = Producer(client_config(settings, **config))
        self.codec = Codec()

    def send(self, topic: str, value: bytes, key: str) -> None:
        while True:
            try:
                self.producer.produce(topic, value, key.encode())
                break
            except BufferError:
                self.producer.poll(0.1)
        self.producer.poll(0)

    def flush(self) -> None:
        assert self.producer.flush(30) == 0


def _bad_records(raw: _Raw, settings: Settings, plan: Plan, i: int, rid: str) -> None:
    """One round of every directly produced bad record, keyed like request ``rid``."""
    topics, encode = settings.topics, raw.codec.encode
    garbage = b"\x00\x01not avro " + rid.encode()
    now = int(time.time() * 1000)
    for role, topic in (
        ("inputs", topics.inputs),
        ("live", topics.live_predictions),
        ("shadow", topics.shadow_predictions),
        ("labels", topics.ground_truth),
        ("events", topics.join_events),
        ("alerts", topics.alerts),  # alerts tail skips it
    ):
        raw.send(topic, garbage, f"junk-{i}")
        plan.inject(role, "undecodable")
    raw.send(topics.inputs, encode(GroundTruth(f"gt-{i}", "churn", now, "1")), f"gt-{i}")
    plan.inject("inputs", "wrong_record_type")
    nan_input = ModelInput(f"nan-{i}", "churn", now, {"x0": math.nan})
    raw.send(topics.inputs, encode(nan_input), f"nan-{i}")
    plan.inject("inputs", "nan_features")
    ghost = Prediction(f"ghost-{i}", "ghost", "v1", Role.LIVE, now, "1")
    raw.send(topics.live_predictions, encode(ghost), ghost.request_id)
    plan.inject("live", "unknown_model")
    stray = Prediction(rid, "churn", "v9", Role.SHADOW, now, "1")
    raw.send(topics.shadow_predictions, encode(stray), rid)
    plan.inject("shadow", "unknown_version")
    wrong = encode(Prediction(rid, "churn", "v1", Role.LIVE, now, "1"))
    raw.send(topics.join_events, wrong, "worse")  # a Prediction where batches belong
    plan.inject("events", "undecodable")
    if i % 400 == 399:  # the big ones more rarely: each costs a megabyte
        huge = ModelInput(f"huge-{i}", "churn", now, {}, {"blob": "x" * HUGE})
        raw.send(topics.inputs, encode(huge), huge.request_id)
        plan.inject("inputs", "too_large")
        big = Prediction(f"big-{i}", "churn", "v1", Role.LIVE, now, "1", None, 1.0, None,
                         {"blob": "x" * 200_000})  # fmt: skip
        raw.send(topics.live_predictions, encode(big), big.request_id)
        plan.inject("live", "too_large")


def serve_poisoned(settings: Settings, good: int, bad_every: int = 10, seed: int = 5) -> Plan:
    """Serve ``good`` requests through the hook and, every ``bad_every`` of them, one round
    of bad records; 5% of the requests get a bad candidate answer, 2% a bad live
    prediction and 2% a bad label. Returns the :class:`Plan`."""
    rng = random.Random(seed)
    plan = Plan()
    raw = _Raw(settings)
    labels: list[tuple[str, Any]] = []
    with ShadowPublisher(
        settings, model="churn", version="v1", export_metrics=False, close_at_exit=False
    ) as hook:
        for i, request in enumerate(classification_requests(good, LIVE, [WORSE], seed=seed)):
            live, rid = request.live, request.live.request_id
            features: dict[str, Any] = {
                **request.input.numeric,
                **request.input.categorical,
                "_worse": str(request.candidates[0].value),
            }
            fate = rng.random()
            value, probabilities, label = live.value, live.probabilities, request.label.value
            clean = True
            if fate < 0.05:
                fault = features["_poison"] = CANDIDATE_FAULTS[i % len(CANDIDATE_FAULTS)]
                if fault == "raise":
                    plan.candidate_errors += 1
                else:
                    plan.invalid[f"invalid:v2:{_REASON[fault]}"] += 1
                clean = False
            elif fate < 0.07:
                fault = rng.choice(sorted(LIVE_FAULTS))
                value, probabilities, clean = LIVE_FAULTS[fault], None, False
                plan.invalid[f"invalid:v1:{_REASON[fault]}"] += 1
            elif fate < 0.09:
                fault = rng.choice(sorted(LABEL_FAULTS))
                label, clean = LABEL_FAULTS[fault], False
                plan.invalid[f"invalid:label:{_REASON[fault]}"] += 1
            hook.publish(features, value, request_id=rid, probabilities=probabilities,
                         latency_ms=2.0, segments=live.segments)  # fmt: skip
            plan.produced["inputs"] += 1
            plan.produced["live"] += 1
            plan.requests += 1
            labels.append((rid, label))
            if clean:
                plan.good += 1
                plan.clean.append(request)
            if i % bad_every == bad_every - 1:
                _bad_records(raw, settings, plan, i, rid)
        assert hook.flush(60) == 0
        for rid, label in labels:
            hook.label(rid, label)
        plan.produced["labels"] += len(labels)
        assert hook.flush(60) == 0
        assert hook.counters.dropped == hook.counters.failed == 0
    raw.flush()
    return plan
