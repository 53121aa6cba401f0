"""The anytime-valid quantile comparison: its order-statistic bounds against a brute-force
inversion of the beta-binomial e-value, its coverage over every look, and its rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from streams.stats import ExperimentMonitor, Observation, QuantileCS
from streams.stats.quantile_cs import _log_e, _prior, order_bounds


@pytest.mark.parametrize("p", [0.5, 0.9, 0.99])
def test_bounds_invert_the_evalue(p: float) -> None:
    a, b = _prior(p, 0.05, 2000.0)
    for t in (1, 7, 50, 333, 5000):
        k = np.arange(t + 1, dtype=np.float64)
        ok = np.flatnonzero(_log_e(k, np.full_like(k, t), p, a, b) < math.log(20.0))
        assert (ok.min(), ok.max()) == order_bounds(t, p, 0.05)
    ts = np.arange(1, 400)
    lo, hi = order_bounds(ts, p, 0.05)
    assert [(int(x), int(y)) for x, y in zip(lo, hi, strict=True)] == [
        order_bounds(int(t), p, 0.05) for t in ts
    ]


@pytest.mark.parametrize("p", [0.5, 0.99])
def test_coverage_holds_over_every_look(p: float) -> None:
    # K_t below the true quantile is Binomial(t, p) whatever the distribution
    rng = np.random.default_rng(0)
    t = np.arange(1, 4001)
    lo, hi = order_bounds(t, p, 0.05)
    k = np.cumsum(rng.random((400, 4000)) < p, axis=1)
    assert ((k < lo) | (k > hi)).any(axis=1).mean() <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / 400)


def test_interval_brackets_the_true_ratio_and_the_streaming_bounds_are_order_statistics() -> None:
    rng = np.random.default_rng(1)
    live = rng.pareto(1.5, 5000) + 1.0  # no variance: a quantile needs none
    cand = 1.3 * (rng.pareto(1.5, 5000) + 1.0)
    t = QuantileCS(0.99, min_samples=100, resolution=None)
    for x, y in zip(live.tolist(), cand.tolist(), strict=True):
        t.update(x, y)
    (l_lo, l_hi), _ = t.bounds()
    k_lo, k_hi = order_bounds(5000, 0.99, 0.025)
    assert (l_lo, l_hi) == (np.sort(live)[k_lo - 1], np.sort(live)[k_hi])
    lo, hi = t.get().ci
    assert lo < 1.3 < hi


def test_quantile_rule_fires_on_a_p99_regression_only() -> None:
    cfg = {
        "name": "e",
        "rules": [{"name": "p99", "metric": "latency_ms", "test": "quantile_cs", "quantile": 0.99}],
    }
    rng = np.random.default_rng(2)
    fired = []
    for tail in (1.0, 1.6):  # same p50, p99 x1.6 in the second run
        mon = ExperimentMonitor(cfg)
        first = None
        for i in range(6000):
            live = float(rng.lognormal(3.0, 0.5))
            c = float(rng.lognormal(3.0, 0.5))
            cand = c * tail if c > math.exp(3.0 + 0.5 * 1.6) else c
            mon.update(Observation(i, {}, {"latency_ms": (live, cand)}))
            if i % 100 == 99 and mon.evaluate(i).alerts and first is None:
                first = i + 1
        fired.append(first)
    assert fired[0] is None and fired[1] is not None


def test_evalue_is_the_beta_binomial_over_the_binomial_likelihood() -> None:
    # scipy oracle: E_t(K) = betabinom.pmf(K; t, a, b) / binom.pmf(K; t, p)
    from scipy import stats

    for p in (0.5, 0.99):
        a, b = _prior(p, 0.025, 2000.0)
        for t in (10, 400, 3000):
            k = np.arange(0, t + 1, max(1, t // 37), dtype=np.float64)
            ref = stats.betabinom.logpmf(k, t, a, b) - stats.binom.logpmf(k, t, p)
            got = _log_e(k, np.full_like(k, t), p, a, b)
            assert np.allclose(got, ref, rtol=1e-9, atol=1e-9)


def test_binned_default_has_bounded_memory_and_contains_the_exact_interval() -> None:
    rng = np.random.default_rng(12)
    live = rng.lognormal(np.log(20.0), 0.5, 50_000)
    cand = 1.1 * rng.lognormal(np.log(20.0), 0.5, 50_000)
    exact, binned = QuantileCS(0.99, resolution=None), QuantileCS(0.99)
    for x, y in zip(live.tolist(), cand.tolist(), strict=True):
        exact.update(x, y)
        binned.update(x, y)
    g = 1.0 + 1e-3
    for (e_lo, e_hi), (b_lo, b_hi) in zip(exact.bounds(), binned.bounds(), strict=True):
        assert b_lo <= e_lo <= b_lo * g and e_hi <= b_hi <= e_hi * g
    lo, hi = binned.get().ci
    assert lo <= exact.get().ci[0] and hi >= exact.get().ci[1]
    assert abs(binned.get().effect / exact.get().effect - 1.0) < 2e-3
    held = len(binned._live.counts) + len(binned._cand.counts)  # type: ignore[union-attr]
    span = math.log(max(live.max(), cand.max()) / min(live.min(), cand.min()))
    assert held <= 2 * (span / math.log(g) + 2) and held < 10_000  # not 100,000 values
