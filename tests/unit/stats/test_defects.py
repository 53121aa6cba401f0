"""Regression tests for issue 16's defects, written from the numbers the issue reports.

1. A windowed paired t forgot large values wrongly (Welford's revert cancels catastrophically).
2. One NaN or infinite value poisoned a statistic for the life of a monitor.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from streams.stats import (
    KS,
    BoundedCS,
    ExperimentMonitor,
    MannWhitney,
    McNemar,
    MixtureSPRT,
    NonFiniteError,
    Observation,
    PairedT,
    QuantileRatio,
    SignTest,
    TwoProportions,
    Wilcoxon,
    Window,
)
from tests.unit.stats._helpers import assert_same, close, quiet

# ---------------------------------------------------------------- defect 1: exact windows


def windowed_t(pairs: list[tuple[float, float]], size: int) -> Window:
    w = Window(PairedT(), size=size)
    for x, y in pairs:
        w.update(x, y)
    return w


def test_window_of_three_forgets_1e9() -> None:
    # issue: variance 64 instead of 1, t 0.65 instead of 5.20, p 0.58 instead of 0.035
    w = windowed_t([(0.0, 1e9), (0.0, 1.0), (0.0, 2.0), (0.0, 3.0), (0.0, 4.0)], 3)
    r = w.get()
    ref = stats.ttest_rel([2.0, 3.0, 4.0], [0.0, 0.0, 0.0])
    assert w.stat.variance == 1.0  # type: ignore[attr-defined]
    assert close(r.statistic, 5.196152422706632, 1e-12)
    assert close(r.statistic, ref.statistic, 1e-12) and close(r.pvalue, ref.pvalue, 1e-12)
    assert round(r.pvalue, 3) == 0.035


def test_window_of_1000_over_4000_with_an_early_outlier() -> None:
    # issue: one earlier outlier of 1e9 gave t 5.04 (p 5.6e-7) instead of 2.49 (p 0.013)
    rng = np.random.default_rng(5)
    live = rng.normal(0.0, 1.0, 4000)
    cand = live + rng.normal(0.08, 1.0, 4000)
    cand[10] = 1e9
    w = windowed_t(list(zip(live.tolist(), cand.tolist(), strict=True)), 1000)
    ref = stats.ttest_rel(cand[-1000:], live[-1000:])
    r = w.get()
    assert close(r.statistic, ref.statistic, 1e-10) and close(r.pvalue, ref.pvalue, 1e-9)


def test_outlier_that_left_the_window_changes_nothing_in_the_monitor() -> None:
    # issue: A/A squared error, a paired_t rule, window 1000, one look at event 2,000: one
    # outlier of 1e10 at event 100 raised false alarms from 10/200 to 56/200.  Now the
    # rule's result at event 2,000 is the same, to the last bit, as without the outlier.
    cfg = {
        "name": "e",
        "window": 1000,
        "rules": [{"name": "t", "metric": "squared_error", "test": "paired_t"}],
    }
    for seed in range(3):
        rng = np.random.default_rng(seed)
        e = rng.normal(0.0, 1.0, (2000, 2)) ** 2
        results = []
        for outlier in (False, True):
            mon = ExperimentMonitor(cfg)
            for i, (a, b) in enumerate(e.tolist()):
                pair = (a, 1e10) if outlier and i == 99 else (a, b)
                mon.update(Observation(i, {}, {"squared_error": pair}))
            results.append(mon.evaluate(2000).rule_results["t"]["all"])
        assert results[0] == results[1]


def test_large_mean_and_zero_mean_windows_are_exact() -> None:
    # issue: at a 1e8 mean difference with spread 1, t was off by ~5e-9 relative; an exactly
    # zero window mean came out as 8.9e-17
    rng = np.random.default_rng(2)
    d = 1e8 + rng.normal(0.0, 1.0, 500)
    w = windowed_t([(0.0, float(v)) for v in d], 200)
    ref = stats.ttest_1samp(d[-200:], 0.0)
    assert close(w.get().statistic, ref.statistic, 1e-13)
    z = windowed_t([(0.0, 7e9), (0.0, 0.1), (0.0, -0.1), (0.0, 0.3), (0.0, -0.3)], 4)
    assert z.get().effect == 0.0 and z.get().statistic == 0.0


finite = st.floats(-1e3, 1e3, allow_nan=False)
outlier = st.floats(1e6, 1e12).flatmap(lambda v: st.sampled_from([v, -v]))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(finite, st.one_of(finite, outlier)), min_size=1, max_size=15),
    st.lists(st.tuples(finite, finite), min_size=2, max_size=60),
    st.integers(2, 12),
)
def test_window_matches_scipy_at_every_read_after_outliers(first, then, size):  # type: ignore[no-untyped-def]
    # outliers up to 1e12, then ordinary data: at every read the window equals the exact
    # (rational) mean and t of its content, and scipy's t-test once no outlier is held
    w = Window(PairedT(), size=size)
    held: list[tuple[float, float]] = []
    for x, y in first + then:
        w.update(x, y)
        held = [*held, (x, y)][-size:]
        if len(held) < 2:
            continue
        r = w.get()
        d = [Fraction(b - a) for a, b in held]
        n = len(d)
        mean = sum(d) / n
        var = sum((v - mean) ** 2 for v in d) / (n - 1)
        assert r.effect == float(mean)
        if float(var) == 0.0:  # nothing, or below the smallest float
            continue
        t2 = mean * mean * n / var  # exact t**2: no subnormal variance in the reference
        assert close(r.statistic, math.copysign(math.sqrt(float(t2)), mean), 1e-13)
        big, spread = max(abs(v) for v in d), max(d) - min(d)
        if big < 1e6 and float(var) > 1e-200 and spread > 1e-3 * big:  # scipy well-conditioned
            ref = quiet(stats.ttest_rel, [b for _, b in held], [a for a, _ in held])
            assert close(r.statistic, ref.statistic, 1e-9, 1e-12), (held, r, ref)
            assert close(r.pvalue, ref.pvalue, 1e-9, 1e-15)


# ------------------------------------------------------- defect 2: non-finite never poisons


def test_infinite_pair_is_refused_by_a_window() -> None:
    # issue: after (0, inf) a paired-t window reported t = -inf, p = 0 forever
    w = Window(PairedT(), size=3)
    w.update(0.0, 1.0)
    with pytest.raises(NonFiniteError):
        w.update(0.0, math.inf)
    for y in (2.0, 3.0, 4.0):
        w.update(0.0, y)
    ref = stats.ttest_rel([2.0, 3.0, 4.0], [0.0, 0.0, 0.0])
    assert w.n == 3 and close(w.get().statistic, ref.statistic, 1e-12)


def test_nan_does_not_blind_the_monitor_to_a_worse_candidate() -> None:
    # issue: one NaN made the cumulative mixture SPRT return p = 1 forever, so a clearly worse
    # candidate (reject at p 7e-105 without it) stayed "continue" with no alert
    rng = np.random.default_rng(3)
    cfg = {"name": "e", "primary_metric": "log_loss", "min_samples": 50}
    mon = ExperimentMonitor(cfg)
    for i in range(3000):
        live = float(rng.exponential(0.5))
        cand = math.nan if i == 10 else live + float(rng.normal(0.2, 0.3))
        mon.update(Observation(i, {}, {"log_loss": (live, cand)}))
    ev = mon.evaluate(3000)
    assert ev.nonfinite == {"log_loss": 1} and ev.counts["log_loss"] == 2999
    assert ev.verdict.decision == "reject"
    assert [a.rule for a in ev.alerts] == ["default-log_loss"]
    assert ev.results["log_loss"]["all"]["asymptotic_cs"].pvalue < 1e-50


NUMERIC: list[tuple[str, Callable[[], Any]]] = [
    ("paired_t", PairedT),
    ("wilcoxon", Wilcoxon),
    ("sign", SignTest),
    ("mcnemar", McNemar),
    ("two_proportions", TwoProportions),
    ("ks", KS),
    ("mannwhitney", MannWhitney),
    ("quantile_ratio", QuantileRatio),
    ("msprt", lambda: MixtureSPRT(min_samples=2)),
    ("bounded_cs", lambda: BoundedCS(-2e3, 2e3, min_samples=2)),
]
bad = st.sampled_from([math.nan, math.inf, -math.inf])
pair = st.tuples(finite, finite)
bad_pair = st.one_of(
    st.tuples(bad, finite), st.tuples(finite, bad), st.tuples(bad, bad), st.just((-1e300, 1e300))
)


@pytest.mark.parametrize(("name", "make"), NUMERIC, ids=[n for n, _ in NUMERIC])
@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(pair, bad_pair), min_size=1, max_size=40))
def test_no_statistic_can_be_poisoned(name, make, data):  # type: ignore[no-untyped-def]
    # every non-finite pair raises NonFiniteError at update and leaves no trace: the result
    # equals that of the same statistic fed the finite pairs only (also through a window)
    windowed = name != "bounded_cs"  # cumulative only (no revert)
    fed, clean = make(), make()
    win, clean_win = (Window(make(), size=7), Window(make(), size=7)) if windowed else (fed, clean)
    for x, y in data:
        ok = math.isfinite((y - x) * (y - x))
        if ok:
            fed.update(x, y)
            clean.update(x, y)
            if windowed:
                win.update(x, y)
                clean_win.update(x, y)
            continue
        with pytest.raises(NonFiniteError):
            fed.update(x, y)
        with pytest.raises(NonFiniteError):
            win.update(x, y)
    assert_same(fed.get(), clean.get(), 0.0, 0.0)
    assert_same(win.get(), clean_win.get(), 0.0, 0.0)


# --------------------------------------- defect 3: a mean test must hold for skewed nulls


def _bench() -> Any:
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[3] / "bench" / "validity.py"
    spec = importlib.util.spec_from_file_location("validity", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_equal_mean_skewed_nulls_hold_alpha_under_the_default_test() -> None:
    # issue: a 1% +99 / 99% -1 difference (mean 0) made a one-sided rule at alpha 0.05 reject in
    # 40% of runs under the symmetric mixture SPRT.  The default test for an unbounded metric
    # (asymptotic_cs; vectorised copy, held equal to the class by test_asymptotic) stays near
    # alpha on it and on two equal-mean lognormals of different shapes, in both orientations.
    v = _bench()
    rng = np.random.default_rng(16)
    shape = (150, 4000)
    pm99 = np.where(rng.random(shape) < 0.01, 99.0, -1.0)
    lognormals = v.lognormal(rng, 1.0, 0.25, shape) - v.lognormal(rng, 1.0, 1.0, shape)
    old = np.isfinite(v.first_alert_sequential(pm99, False, 0.05)).mean()
    assert old > 0.3  # the defect, as the issue measured it
    limit = 0.05 + 3 * math.sqrt(0.05 * 0.95 / shape[0])  # alpha + 3 Monte-Carlo s.e.
    for d in (pm99, lognormals):
        for worse_positive in (True, False):
            rate = np.isfinite(v.first_alert_asymptotic(d, worse_positive, 0.05)).mean()
            assert rate <= limit, (rate, worse_positive)
