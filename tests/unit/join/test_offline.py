"""The pure join + statistics over a seeded synthetic stream: counts exact, verdicts right."""

from __future__ import annotations

import random

from streams.join.experiments import ExperimentsFile
from streams.join.offline import OfflineJoin
from streams.records import GroundTruth, Prediction
from streams.synthetic import CandidateSpec, classification_requests, regression_requests
from tests.unit.join.experiments_toml import CANDIDATES_TOML

EXPERIMENTS = ExperimentsFile.parse(CANDIDATES_TOML.format(pair_ttl=30, label_ttl=600))


def stream(n: int, seed: int) -> tuple[list[Prediction | GroundTruth], dict[str, int]]:
    requests = classification_requests(
        n,
        CandidateSpec("v1", 0.90, latency_ms=20),
        [
            CandidateSpec("v2", 0.85, latency_ms=20),
            CandidateSpec("v3", 0.90, latency_ms=20),
            CandidateSpec("v4", 0.90, latency_ms=26),
        ],
        seed=seed,
    )
    rng = random.Random(seed)
    records: list[Prediction | GroundTruth] = []
    expected = {"paired": 0, "labelled": 0, "no_shadow": 0, "no_label": 0, "label_unknown": 0}
    for request in requests:
        fate = rng.random()
        if fate < 0.02:  # only the label ever arrives
            records.append(request.label)
            expected["label_unknown"] += 1
            continue
        records.append(request.live)
        if fate < 0.05:  # no candidate answered
            expected["no_shadow"] += 1
            continue
        records.extend(request.candidates)
        expected["paired"] += 1
        if fate < 0.10:
            expected["no_label"] += 1
        else:
            records.append(request.label)
            expected["labelled"] += 1
    records.sort(key=lambda r: r.timestamp_ms)
    return records, expected


def test_counts_are_exact_and_verdicts_follow_the_truth() -> None:
    records, expected = stream(6000, seed=3)
    join = OfflineJoin(EXPERIMENTS)
    join.feed(records + records[:500])  # a redelivered prefix must not count twice
    join.finish()
    for name in ("worse", "same", "slow"):
        counts = join.judge.counts[name]
        assert counts["paired"] == expected["paired"]
        assert counts["labelled"] == expected["labelled"]
        assert counts["expired_no_shadow"] == expected["no_shadow"]
        assert counts["expired_no_label"] == expected["no_label"]
        assert counts["expired_label_unknown"] == expected["label_unknown"]
        assert counts["expired_no_live"] == 0
    assert join.pending == {}
    assert join.outcomes["duplicate"] == 500
    reports = {name: join.judge.report(name, join.now_ms) for name in ("worse", "same", "slow")}
    assert reports["worse"].snapshot.decision == "reject"
    assert [a.rule for a in reports["worse"].alerts] == ["default-correct"]
    assert reports["same"].alerts == () and reports["same"].snapshot.decision == "continue"
    assert "insufficient evidence" in reports["same"].snapshot.reason
    assert [a.rule for a in reports["slow"].alerts] == ["default-latency_ms"]


def test_replaying_the_same_records_gives_the_same_result() -> None:
    records, _ = stream(2000, seed=5)
    results = []
    for _ in range(2):
        join = OfflineJoin(EXPERIMENTS)
        join.feed(records)
        join.finish()
        report = join.judge.report("worse", join.now_ms)
        results.append((report.snapshot.counts, report.snapshot.results, report.snapshot.reason))
    assert results[0] == results[1]


def test_regression_losses_reach_the_monitor() -> None:
    experiments = ExperimentsFile.parse(
        """
[[experiments]]
name = "eta"
model = "eta"
live_version = "v1"
candidate = "v2"
task = "regression"
primary_metric = "abs_error"
"""
    )
    requests = list(
        regression_requests(
            3000,
            CandidateSpec("v1", error_scale=2.0),
            [CandidateSpec("v2", error_scale=1.0)],
            seed=1,
        )
    )
    records: list[Prediction | GroundTruth] = []
    for request in requests:
        records += [request.live, *request.candidates, request.label]
    records.sort(key=lambda r: r.timestamp_ms)
    join = OfflineJoin(experiments)
    join.feed(records)
    join.finish()
    report = join.judge.report("eta", join.now_ms)
    assert report.snapshot.decision == "promote"
    abs_error = [r for r in report.snapshot.results if r.metric == "abs_error" and r.segment == ""]
    assert abs_error and all(r.n == 3000 for r in abs_error)
