"""Downstream outcome shadowing: decisions and business KPIs judged like model metrics."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from streams.downstream.delivery import EtaModel, generate_deliveries, train_eta_models
from streams.join.experiments import ConfigError, ExperimentsFile
from streams.join.offline import OfflineJoin
from streams.records import GroundTruth, ModelInput, Prediction, Role
from tests.unit.join import flaky
from tests.unit.join.flaky import DELIVERY_EXPERIMENT, FLAKY, REAL

TEMPLATE = (
    """
[join]
pair_ttl_s = 60
label_ttl_s = 3600
"""
    + DELIVERY_EXPERIMENT
)


def experiments(name: str, primary: str, functions: tuple[str, str] = REAL) -> ExperimentsFile:
    return ExperimentsFile.parse(
        TEMPLATE.format(name=name, primary=primary, decision=functions[0], kpis=functions[1])
    )


def traffic(
    n: int, live: EtaModel, candidate: EtaModel
) -> Iterator[ModelInput | Prediction | GroundTruth]:
    for i, order in enumerate(generate_deliveries(n, seed=7)):
        rid, ts = f"order-{i}", 1_000 + i
        segments = {"city": order.city}
        yield ModelInput(
            rid,
            "eta",
            ts,
            {k: v for k, v in order.features.items() if k != "traffic"},
            {"traffic": order.features["traffic"]},
            segments,
        )
        yield Prediction(
            rid, "eta", "v1", Role.LIVE, ts, live.predict_one(order.features), segments=segments
        )
        yield Prediction(
            rid,
            "eta",
            "v2",
            Role.SHADOW,
            ts,
            candidate.predict_one(order.features),
            segments=segments,
        )
        yield GroundTruth(rid, "eta", ts + 500, order.actual_minutes)


@pytest.fixture(scope="module")
def models() -> tuple[EtaModel, EtaModel]:
    return train_eta_models(seed=0)


def run(exps: ExperimentsFile, models: tuple[EtaModel, EtaModel], n: int = 3000) -> OfflineJoin:
    join = OfflineJoin(exps)
    join.feed(traffic(n, *models))
    join.finish()
    return join


def overall(join: OfflineJoin, name: str, metric: str) -> float:
    snapshot = join.judge.report(name, join.now_ms).snapshot
    result = next(
        r
        for r in snapshot.results
        if r.metric == metric and r.segment == "" and r.test in ("msprt", "asymptotic_cs")
    )
    assert result.effect is not None
    return result.effect


def test_early_biased_candidate_is_better_on_mae_and_worse_on_late_deliveries(
    models: tuple[EtaModel, EtaModel],
) -> None:
    join = run(experiments("kpi-primary", "late"), models)
    report = join.judge.report("kpi-primary", join.now_ms)
    assert overall(join, "kpi-primary", "abs_error") < 0  # candidate minus live: lower error
    assert overall(join, "kpi-primary", "late") > 0  # ... and more late deliveries
    firing = {a.rule for a in report.alerts}
    assert firing == {"later-deliveries", "better-mae"}
    assert report.snapshot.decision == "reject"
    assert "late" in report.snapshot.reason
    decisions = [r for r in report.snapshot.results if r.metric == "decision" and r.segment == ""]
    assert decisions, "the label-free decision comparison is reported"
    assert {r.segment for r in report.snapshot.results if r.metric == "late"} >= {""}


def test_the_verdict_follows_the_configured_primary_metric(
    models: tuple[EtaModel, EtaModel],
) -> None:
    join = run(experiments("mae-primary", "abs_error"), models)
    assert join.judge.report("mae-primary", join.now_ms).snapshot.decision == "promote"


def test_failing_user_functions_are_counted_for_exactly_their_requests(
    models: tuple[EtaModel, EtaModel],
) -> None:
    n = 1500
    orders = list(generate_deliveries(n, seed=7))
    long_trips = sum(o.features["distance_km"] > flaky.LONG_TRIP_KM for o in orders)
    slow_kitchens = sum(
        o.features["prep_minutes"] > flaky.SLOW_PREP_MINUTES
        and o.features["distance_km"] <= flaky.LONG_TRIP_KM
        for o in orders
    )
    assert long_trips > 0 and slow_kitchens > 0
    join = run(experiments("flaky", "late", FLAKY), models, n)
    counts = join.judge.report("flaky", join.now_ms).snapshot.counts
    assert counts["errors:tests.unit.join.flaky:decide"] == long_trips
    assert counts["errors:tests.unit.join.flaky:kpis"] == slow_kitchens
    assert counts["paired"] == n and counts["labelled"] == n
    monitor = join.judge.monitors["flaky"]
    assert monitor.counts["abs_error"] == n  # model metrics are still evaluated everywhere
    assert monitor.counts["late"] == n - long_trips - slow_kitchens


def test_a_bad_function_path_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"decision: cannot import 'nowhere.module:decide'"):
        experiments("x", "late", ("nowhere.module:decide", REAL[1]))
    with pytest.raises(ConfigError, match=r"kpis\[0\]: must be 'module:function'"):
        experiments("x", "late", (REAL[0], "no-colon"))
