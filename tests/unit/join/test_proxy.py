"""Verdicts before the labels through the join: the experiment's proxy function gives each
paired request label-free proxies, and the monitor's prediction-powered estimate ("ppi") pairs
them with the true metric when the label comes."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

import pytest

from streams.join.experiments import ConfigError, ExperimentsFile
from streams.join.judge import Judge
from streams.join.observe import metric_values
from streams.join.offline import OfflineJoin
from streams.records import JoinEvent, JoinKind
from streams.stats import PROXY, ExperimentMonitor, Observation, PredictionPowered
from streams.synthetic import CandidateSpec, regression_requests

TOML = """
[join]
pair_ttl_s = 2
label_ttl_s = 120

[[experiments]]
name = "eta"
model = "eta"
live_version = "v1"
candidate = "v2"
task = "regression"
primary_metric = "abs_error"
proxy = "tests.unit.join.test_proxy:abs_error_proxy"
proxies = ["abs_error"]
"""


def abs_error_proxy(inputs: Mapping[str, Any], live: Any, candidate: Any) -> dict[str, Any]:
    """A label-free guess of each side's absolute error (the other side as the label)."""
    middle = (float(live) + float(candidate)) / 2.0
    return {"abs_error": (abs(float(live) - middle) + 0.1, abs(float(candidate) - middle))}


def join_events(n: int, seed: int) -> tuple[ExperimentsFile, list[JoinEvent]]:
    exps = ExperimentsFile.parse(TOML)
    rng = random.Random(seed)
    requests = regression_requests(
        n, CandidateSpec("v1"), [CandidateSpec("v2", bias=0.5)], seed=seed
    )
    records = [
        rec
        for r in requests
        for rec in (r.input, r.live, *r.candidates, r.label)
        if rec is r.input or rng.random() > 0.02
    ]
    join = OfflineJoin(exps)
    join.feed(sorted(records, key=lambda r: r.timestamp_ms))
    join.finish()
    return exps, join.events


def test_proxies_feed_a_prediction_powered_estimate() -> None:
    exps, stream = join_events(800, seed=1)
    judge = Judge(exps)
    assert judge.experiments["eta"].proxy is not None
    ref = PredictionPowered(alpha=0.05, min_labelled=100)
    paired = labelled = 0
    for event in stream:
        judge.apply(event)
        found = metric_values(event, judge.experiments["eta"])
        if found is None:
            continue
        values = found[0]
        proxy = values.get("abs_error" + PROXY)
        if proxy is None:
            continue
        if event.kind is JoinKind.PAIRED:
            ref.update_proxy(*proxy)
            paired += 1
        else:
            ref.update(*values["abs_error"], *proxy)
            labelled += 1
    assert paired > 700 and labelled > 700
    evaluation = judge.report("eta", stream[-1].timestamp_ms).evaluation
    got = evaluation.results["abs_error"]["all"]["ppi"]
    assert repr(got) == repr(ref.get()) and got.window == "estimated"
    assert "abs_error" + PROXY not in judge.monitors["eta"].ignored
    assert ref.n_paired == paired and got.n == labelled


def test_a_proxy_function_needs_the_metrics_it_is_for() -> None:
    text = TOML.replace('proxies = ["abs_error"]\n', "")
    with pytest.raises(ConfigError, match="proxies"):
        ExperimentsFile.parse(text)
    with pytest.raises(ConfigError, match="proxies"):
        ExperimentsFile.parse(TOML.replace('["abs_error"]', '["nope"]'))


def test_a_non_finite_proxy_is_counted_and_never_fed() -> None:
    mon = ExperimentMonitor({"name": "e", "proxies": ["log_loss"], "min_samples": 2})
    for i, f in enumerate([0.1, math.nan, 0.3, math.inf, 0.2]):
        mon.update(Observation(i, {}, {"log_loss" + PROXY: (0.0, f)}))
    ev = mon.evaluate(5)
    assert ev.nonfinite == {"log_loss" + PROXY: 2}
    assert mon._ppi["log_loss"][1].n_paired == 3 and not mon.ignored
    assert ev.results["log_loss"]["all"]["ppi"].n == 0  # no label yet: nothing estimated
