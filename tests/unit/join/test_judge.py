"""Stage 2 (:class:`Judge`): what it counts, what it drops, and what it feeds the monitors."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from streams.join.experiments import ExperimentsFile
from streams.join.judge import Judge
from streams.join.observe import observation
from streams.join.offline import OfflineJoin
from streams.records import JoinEvent
from streams.stats import ExperimentMonitor
from streams.synthetic import CandidateSpec, classification_requests, regression_requests

EXPERIMENTS_TOML = """
[join]
pair_ttl_s = 2
label_ttl_s = 120

[[experiments]]
name = "churn"
model = "churn"
live_version = "v1"
candidate = "v2"
task = "binary"
positive_class = "1"
primary_metric = "correct"
guardrails = [{metric = "brier", margin = 0.02}]
segments = ["country"]

[[experiments]]
name = "eta"
model = "eta"
live_version = "v1"
candidate = "v2"
task = "regression"
primary_metric = "abs_error"
segments = ["device"]
window_seconds = 30

[[experiments.rules]]
name = "mae"
metric = "abs_error"
test = "wilcoxon"
segments = ["device"]
"""
EXPERIMENTS = ExperimentsFile.parse(EXPERIMENTS_TOML)


def events(n: int, seed: int) -> list[JoinEvent]:
    """Stage 1 output for seeded traffic in which a few records never arrive."""
    rng = random.Random(seed)
    requests = [
        *classification_requests(
            n, CandidateSpec("v1", 0.9), [CandidateSpec("v2", 0.85, error_rate=0.02)], seed=seed
        ),
        *regression_requests(
            n, CandidateSpec("v1"), [CandidateSpec("v2", bias=0.5, latency_ms=25)], seed=seed
        ),
    ]
    records = [
        record
        for r in requests
        for record in (r.live, *r.candidates, r.label)
        if rng.random() > 0.03
    ]
    join = OfflineJoin(EXPERIMENTS)
    join.feed(sorted(records, key=lambda r: r.timestamp_ms))
    join.finish()
    return join.events


def test_the_judge_feeds_each_monitor_what_observation_says() -> None:
    stream = events(1500, seed=4)
    judge = Judge(EXPERIMENTS)
    monitors = {name: ExperimentMonitor(e.rules) for name, e in judge.experiments.items()}
    for i, event in enumerate(stream):
        assert judge.apply(event)
        observed = observation(event, judge.experiments[event.experiment])
        if observed.observation is not None:
            monitors[event.experiment].update(observed.observation)
        if i % 500 == 0 or i == len(stream) - 1:
            for name, monitor in monitors.items():
                # repr: exact floats, nan included, and every mapping in order
                got = judge.report(name, event.timestamp_ms).evaluation
                assert repr(got) == repr(monitor.evaluate(event.timestamp_ms))
    counts = judge.counts["churn"]
    assert counts["paired"] > 1000 and counts["labelled"] > 1000
    assert counts["expired_no_shadow"] + counts["expired_no_live"] > 0


@pytest.mark.parametrize("dedup", [True, False])
def test_redelivered_events_are_dropped_unless_dedup_is_off(dedup: bool) -> None:
    stream = events(300, seed=5)
    judge = Judge(EXPERIMENTS, dedup=dedup)
    once = Judge(EXPERIMENTS)
    applied = [judge.apply(e) for e in stream + stream[:100]]
    for e in stream:
        once.apply(e)
    assert applied == [True] * len(stream) + [not dedup] * 100
    name = stream[0].experiment
    dropped = judge.counts[name]["duplicates_dropped"]
    if dedup:
        assert dropped == sum(e.experiment == name for e in stream[:100])
        assert repr(judge.report(name, 0).evaluation) == repr(once.report(name, 0).evaluation)
    else:
        assert dropped == 0
        assert judge.counts[name]["paired"] > once.counts[name]["paired"]


def test_an_unknown_experiment_is_counted_and_dropped() -> None:
    event = events(50, seed=6)[0]
    judge = Judge(EXPERIMENTS, dedup=False)
    stranger = JoinEvent(event.kind, "nobody", event.request_id, 0, event.live, event.candidate)
    assert not judge.apply(stranger) and judge.unknown_experiment == 1


def test_event_times_outside_the_clock_are_clamped_and_counted_clock_skew() -> None:
    # EXPERIMENTS: label_ttl_s = 120, max_skew_s the default 300
    assert EXPERIMENTS.join.max_skew_s == 300.0
    now = 10_000_000
    base = [e for e in events(30, seed=4) if e.experiment == "eta"]
    judge = Judge(EXPERIMENTS, dedup=False)
    shifted = [
        replace(e, timestamp_ms=now + (365 * 86_400_000 if i == 0 else -500_000 if i == 1 else 0))
        for i, e in enumerate(base)
    ]
    for event in shifted:
        judge.apply(event, now)
    assert judge.clock_skew == {"eta": 2}
    trusting = Judge(EXPERIMENTS, dedup=False)
    for event in shifted:
        trusting.apply(event)  # no clock: nothing clamped
    assert not trusting.clock_skew
    assert judge.counts["eta"] == trusting.counts["eta"]  # records are counted all the same
