"""ExperimentMonitor end to end: alerts with hysteresis, segments, verdicts, pickling."""

from __future__ import annotations

import pickle
import random
from typing import Any

import pytest

from streams.stats import (
    ALL_SEGMENT,
    ExperimentMonitor,
    ExperimentRules,
    MixtureSPRT,
    Observation,
    Statistic,
    TestResult,
    Window,
)
from streams.stats.catalog import SEQUENTIAL_TESTS, battery, make_test
from streams.stats.monitor_state import guard_stat as _guard_stat
from streams.stats.monitor_state import rule_stat as _rule_stat
from streams.stats.monitor_state import sequential as _sequential
from streams.stats.verdict import decide


def stream(
    n: int,
    p_live: float,
    p_cand: float,
    lat_cand: float = 20.0,
    seed: int = 0,
    start: int = 0,
    countries: tuple[str, ...] = ("FR", "DE"),
) -> list[Observation]:
    rng = random.Random(seed)
    out = []
    for i in range(start, start + n):
        c = countries[i % len(countries)]
        base = rng.lognormvariate(3.0, 0.3)
        out.append(
            Observation(
                timestamp_ms=i * 10,
                segments={"country": c},
                paired={
                    "correct": (float(rng.random() < p_live), float(rng.random() < p_cand)),
                    "latency_ms": (base, base * lat_cand / 20.0 + rng.gauss(0, 1)),
                    "error": (float(rng.random() < 0.01), float(rng.random() < 0.01)),
                },
                categorical={
                    "predicted_class": (
                        "a" if rng.random() < 0.5 else "b",
                        "a" if rng.random() < 0.5 else "b",
                    )
                },
            )
        )
    return out


CFG = {
    "name": "exp",
    "primary_metric": "correct",
    "guardrails": [{"metric": "latency_ms", "margin": 0.1, "relative": True}],
    "min_samples": 100,
    "segments": ["country"],
    "window": 2000,
}


def run(mon: ExperimentMonitor, obs: list[Observation], every: int = 100) -> list:  # type: ignore[type-arg]
    evs = []
    for i, o in enumerate(obs, 1):
        mon.update(o)
        if i % every == 0:
            evs.append(mon.evaluate(o.timestamp_ms))
    return evs


def test_aa_stream_does_not_alert_and_continues() -> None:
    mon = ExperimentMonitor(CFG)
    evs = run(mon, stream(3000, 0.9, 0.9, seed=1))
    assert not [a for e in evs for a in e.alerts]
    last = evs[-1]
    assert last.verdict.decision == "continue"
    assert "insufficient evidence" in last.verdict.reason
    assert last.counts == {
        "correct": 3000,
        "latency_ms": 3000,
        "error": 3000,
        "predicted_class": 3000,
    }
    res = last.results["correct"][ALL_SEGMENT]
    assert set(res) == {"msprt", "mcnemar", "two_proportions"}
    assert set(last.results["latency_ms"][ALL_SEGMENT]) >= {
        "mannwhitney",
        "quantile_ratio_p95",
        "paired_t",
        "wilcoxon",
    }
    assert res["mcnemar"].n == 2000 and res["mcnemar"].window == "count:2000"
    assert res["msprt"].n == 3000 and res["msprt"].window == "cumulative"
    assert last.results["correct"]["country=FR"]["msprt"].n == 1500
    assert {k[0] for k in last.qvalues} >= {"correct", "latency_ms", "predicted_class"}


def test_regression_fires_once_then_rejects_and_resolves() -> None:
    mon = ExperimentMonitor(CFG)
    evs = run(mon, stream(4000, 0.9, 0.75, seed=2))
    alerts = [a for e in evs for a in e.alerts]
    keys = [a.key for a in alerts]
    assert "exp:default-correct:all" in keys
    assert keys.count("exp:default-correct:all") == 1  # no alert storm
    a = next(a for a in alerts if a.key == "exp:default-correct:all")
    assert a.state == "FIRING" and a.severity == "critical" and a.result.effect < 0
    assert "p=" in a.message and "e=" in a.message and "n=" in a.message
    last = evs[-1]
    assert last.verdict.decision == "reject" and "correct" in last.verdict.reason
    assert "exp:default-correct:all" in last.firing
    # the regression disappears: a fresh candidate stream resolves after resolve_after evals
    mon2 = pickle.loads(pickle.dumps(mon))
    assert mon2.evaluate(40_000).firing == last.firing
    for rule_stat in mon2._rule_stats.values():
        rule_stat.reset()  # type: ignore[union-attr]
    states = [
        a.state for e in run(mon2, stream(500, 0.9, 0.9, seed=3, start=4000)) for a in e.alerts
    ]
    assert "RESOLVED" in states


def test_hysteresis_fire_after() -> None:
    cfg = {
        "name": "h",
        "rules": [
            {
                "name": "acc",
                "metric": "correct",
                "test": "mcnemar",
                "fire_after": 3,
                "resolve_after": 2,
                "min_samples": 50,
            }
        ],
    }
    mon = ExperimentMonitor(cfg)
    for o in stream(1000, 0.95, 0.5, seed=4):
        mon.update(o)
    e1, e2, e3, e4 = (mon.evaluate(10_000 + i) for i in range(4))
    assert not e1.alerts and not e2.alerts
    assert [a.state for a in e3.alerts] == ["FIRING"] and not e4.alerts
    assert e3.alerts[0].key == "h:acc:all"


def test_promote_when_better_and_guardrail_ok() -> None:
    mon = ExperimentMonitor(CFG)
    evs = run(mon, stream(4000, 0.8, 0.9, seed=5), every=500)
    v = evs[-1].verdict
    assert v.decision == "promote", v.reason
    assert v.guardrails[0].status == "ok" and v.primary is not None and v.primary.effect > 0


def test_guardrail_violation_rejects() -> None:
    mon = ExperimentMonitor(CFG)
    evs = run(mon, stream(4000, 0.8, 0.9, lat_cand=30.0, seed=6), every=500)
    v = evs[-1].verdict
    assert v.decision == "reject" and "latency_ms violated" in v.reason


def test_segment_rules_and_overflow() -> None:
    cfg = {
        "name": "s",
        "max_segment_values": 2,
        "rules": [{"name": "acc", "metric": "correct", "segments": ["country"], "min_samples": 50}],
    }
    mon = ExperimentMonitor(cfg)
    obs = stream(900, 0.9, 0.9, seed=7, countries=("FR", "DE", "US"))
    for o in obs:
        mon.update(o)
    ev = mon.evaluate(9000)
    assert set(ev.rule_results["acc"]) == {"all", "country=FR", "country=DE", "country=__other__"}
    assert ev.rule_results["acc"]["country=__other__"].n == 300


def test_unknown_metrics_are_counted_not_tracked() -> None:
    mon = ExperimentMonitor({"name": "u"})
    mon.update(Observation(0, {}, {"mystery": (1.0, 2.0)}))
    assert mon.ignored == {"mystery": 1} and mon.evaluate(0).counts == {}


def test_monitor_is_picklable_and_continues_identically() -> None:
    mon = ExperimentMonitor(ExperimentRules.from_dict(CFG))
    obs = stream(600, 0.9, 0.85, seed=8)
    for o in obs[:300]:
        mon.update(o)
    clone = pickle.loads(pickle.dumps(mon))
    for o in obs[300:]:
        mon.update(o)
        clone.update(o)
    a, b = mon.evaluate(6000), clone.evaluate(6000)
    assert a.results == b.results and a.verdict == b.verdict
    assert len(pickle.dumps(mon)) < 2_000_000


@pytest.mark.parametrize("seed", [0, 1])
def test_monitor_first_alert_matches_vectorised_bench(seed: int) -> None:
    import importlib.util
    from pathlib import Path

    import numpy as np

    path = Path(__file__).resolve().parents[3] / "bench" / "validity.py"
    spec = importlib.util.spec_from_file_location("validity", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rng = np.random.default_rng(seed)
    live = (rng.random(3000) < 0.9).astype(float)
    cand = (rng.random(3000) < 0.8).astype(float)
    expected = bench.first_alert_sequential((cand - live)[None, :], False, 0.05 / 3)[0]
    mon = ExperimentMonitor({"name": "v", "primary_metric": "correct"})
    got = None
    for i in range(3000):
        mon.update(Observation(i, {}, {"correct": (live[i], cand[i])}))
        if mon.evaluate(i).alerts:
            got = i + 1
            break
    assert got == expected


class Reference:
    """The monitor's bookkeeping done the plain way: one window per test, every lookup on
    every update, state created in order as metrics and segment values appear."""

    def __init__(self, cfg: ExperimentRules) -> None:
        self.cfg = cfg
        self.counts: dict[str, int] = {}
        self.ignored: dict[str, int] = {}
        self.seen: dict[str, set[str]] = {k: set() for k in cfg.segment_keys()}
        self.battery: dict[str, dict[str, Statistic | Window]] = {}
        self.seg: dict[tuple[str, str], Statistic] = {}
        self.rules: dict[tuple[str, str], Statistic | Window] = {}
        a_v = cfg.alpha / (1 + len(cfg.guardrails))
        primary = cfg.primary_metric
        self.primary = _sequential(cfg, primary, a_v) if primary else MixtureSPRT()
        self.guards = {g.metric: _guard_stat(cfg, g.metric, a_v) for g in cfg.guardrails}

    def update(self, obs: Observation) -> None:
        labels = []
        for k, seen in self.seen.items():
            v = obs.segments.get(k)
            if v is None:
                continue
            if v not in seen:
                if len(seen) >= self.cfg.max_segment_values:
                    v = "__other__"
                else:
                    seen.add(v)
            labels.append((k, f"{k}={v}"))
        for numeric, values in ((True, obs.paired), (False, obs.categorical)):
            for metric, (x, y) in values.items():
                self.add(metric, x, y, obs.timestamp_ms / 1000.0, labels, numeric)

    def add(self, metric: str, x: Any, y: Any, t: float, labels: Any, numeric: bool) -> None:
        cfg = self.cfg
        if metric not in cfg.metrics:
            self.ignored[metric] = self.ignored.get(metric, 0) + 1
            return
        spec = cfg.metrics[metric]
        if (spec.kind == "categorical") == numeric:
            return
        self.counts[metric] = self.counts.get(metric, 0) + 1
        if metric not in self.battery:
            self.battery[metric] = {}
            for key, test, q in battery(metric, spec.kind, spec.binary, spec.sequential_test):
                s = make_test(
                    test,
                    alpha=cfg.alpha,
                    min_samples=cfg.min_samples,
                    quantile=q or 0.95,
                    tune_n=cfg.tune_n,
                )
                w = Window(s, size=cfg.window, seconds=cfg.window_seconds)
                self.battery[metric][key] = s if test in SEQUENTIAL_TESTS else w
        stats = list(self.battery[metric].values())
        if spec.kind == "paired":
            for _, label in labels:
                if (metric, label) not in self.seg:
                    self.seg[(metric, label)] = _sequential(cfg, metric, cfg.alpha)
                stats.append(self.seg[(metric, label)])
            stats += [self.primary] if metric == cfg.primary_metric else []
            stats += [self.guards[metric]] if metric in self.guards else []  # type: ignore[list-item]
        for rule in cfg.rules:
            if rule.metric == metric:
                for seg in ["all"] + [lab for k, lab in labels if k in rule.segments]:
                    if (rule.name, seg) not in self.rules:
                        self.rules[(rule.name, seg)] = _rule_stat(cfg, rule, spec)
                    stats.append(self.rules[(rule.name, seg)])
        for s in stats:
            if isinstance(s, Window):
                s.update(x, y, t)
            else:
                s.update(x, y)

    def results(self, now: float) -> tuple[dict[str, Any], dict[str, Any]]:
        def get(s: Statistic | Window) -> TestResult:
            return s.expire(now).get() if isinstance(s, Window) else s.get()

        res = {m: {"all": {k: get(s) for k, s in b.items()}} for m, b in self.battery.items()}
        for (metric, label), seq in self.seg.items():
            r = seq.get()
            res[metric].setdefault(label, {})[r.test] = r
        rules: dict[str, Any] = {}
        for (name, seg), s in self.rules.items():
            rules.setdefault(name, {})[seg] = get(s)
        return res, rules


def nested(d: Any) -> Any:
    """Keys in order and values by repr: exact equality, nan included."""
    return [(k, nested(v)) for k, v in d.items()] if isinstance(d, dict) else repr(d)


@pytest.mark.parametrize("window", [{"window": 300}, {"window_seconds": 2.0}])
def test_monitor_equals_the_plain_bookkeeping(window: dict[str, Any]) -> None:
    cfg = ExperimentRules.from_dict(
        {
            **{k: v for k, v in CFG.items() if k != "window"},
            **window,
            "name": "plain",
            "max_segment_values": 2,
            "segments": ["country", "device"],
            "guardrails": [{"metric": "latency_ms", "margin": 0.1, "relative": True}],
            "rules": [
                {"name": "acc", "metric": "correct", "test": "mcnemar", "segments": ["country"]},
                {"name": "lat", "metric": "latency_ms", "test": "quantile_ratio"},
                {
                    "name": "cls",
                    "metric": "predicted_class",
                    "test": "chi2",
                    "segments": ["device"],
                },
                {"name": "seq", "metric": "latency_ms", "segments": ["device", "country"]},
            ],
        }
    )
    mon, ref = ExperimentMonitor(cfg), Reference(cfg)
    obs = stream(1500, 0.9, 0.85, seed=9, countries=("FR", "DE", "US", "IT"))
    for i, o in enumerate(obs):
        extra = {"mystery": (1.0, 2.0)} if i % 7 == 0 else {}  # unknown: counted apart
        o = Observation(
            o.timestamp_ms,
            {**o.segments, "device": "abc"[i % 3]},
            {**o.paired, **extra},
            {**o.categorical, "correct": ("a", "b")},  # the wrong kind: skipped
        )
        mon.update(o)
        ref.update(o)
        if i == 700:
            mon = pickle.loads(pickle.dumps(mon))
        if i % 250 == 0 or i == len(obs) - 1:
            ev = mon.evaluate(o.timestamp_ms)
            results, rules = ref.results(o.timestamp_ms / 1000.0)
            assert nested(ev.results) == nested(results)
            assert nested(ev.rule_results) == nested(rules)
            assert repr(ev.verdict) == repr(decide(cfg, ref.primary, ref.guards))
    assert ev.counts == ref.counts and mon.ignored == ref.ignored == {"mystery": 215}
    assert list(ev.results["latency_ms"]) == [
        "all",
        "country=FR",
        "device=a",
        "country=DE",
        "device=b",
        "country=__other__",
        "device=__other__",
    ]
