"""Oracle tests: every fixed-horizon statistic equals scipy.stats on the same window.

Tolerances: rel 1e-9 where both sides compute the same closed form (incremental vs batch
floating-point summation order); the only approximations are documented per test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from streams.stats import (
    KS,
    PSI,
    Agreement,
    ChiSquare,
    MannWhitney,
    McNemar,
    MixtureSPRT,
    PairedT,
    QuantileRatio,
    SignTest,
    TwoProportions,
    Wilcoxon,
    benjamini_hochberg,
)
from streams.stats.sequential import log_evalue
from tests.unit.stats._helpers import close, quiet

ALTS = ["two-sided", "less", "greater"]
# quarter-steps on a small grid: plenty of ties and zero differences
grid = st.integers(-8, 8).map(lambda v: v / 4.0)
pairs = st.lists(st.tuples(grid, grid), min_size=1, max_size=40)
wide = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
wide_pairs = st.lists(st.tuples(wide, wide), min_size=1, max_size=40)
alts = st.sampled_from(ALTS)


def feed(stat, data):  # type: ignore[no-untyped-def]
    for x, y in data:
        stat.update(x, y)
    return stat.get()


def arrays(data):  # type: ignore[no-untyped-def]
    x = np.array([p[0] for p in data], dtype=float)
    y = np.array([p[1] for p in data], dtype=float)
    return x, y


@settings(max_examples=150, deadline=None)
@given(st.one_of(pairs, wide_pairs), alts)
def test_paired_t_matches_ttest_rel(data, alt):  # type: ignore[no-untyped-def]
    r = feed(PairedT(alt), data)
    x, y = arrays(data)
    d = y - x
    if len(data) < 2 or np.ptp(d) <= 1e-9 * max(1.0, float(np.max(np.abs(d)))):
        return  # degenerate: scipy warns about catastrophic cancellation
    ref = quiet(stats.ttest_rel, y, x, alternative=alt)
    assert close(r.statistic, ref.statistic, 1e-7) and close(r.pvalue, ref.pvalue, 1e-7, 1e-12)
    ci = ref.confidence_interval(0.95)
    assert close(r.ci[0], ci.low, 1e-7, 1e-9) and close(r.ci[1], ci.high, 1e-7, 1e-9)
    assert close(r.effect, float(np.mean(d)), 1e-9, 1e-12)


@settings(max_examples=200, deadline=None)
@given(st.one_of(pairs, wide_pairs), alts)
def test_wilcoxon_matches_scipy(data, alt):  # type: ignore[no-untyped-def]
    r = feed(Wilcoxon(alt), data)
    x, y = arrays(data)
    d = y - x
    nz = d[d != 0]
    if nz.size == 0:
        assert math.isnan(r.pvalue)
        return
    ties = np.unique(np.abs(nz)).size < nz.size
    # scipy "auto": exact without ties/zeros for n <= 50; we use the normal approximation
    # where scipy would run a permutation test (ties or zeros, n <= 13).
    method = "exact" if not ties and nz.size == d.size and d.size <= 50 else "asymptotic"
    ref = quiet(stats.wilcoxon, y, x, alternative=alt, method=method)
    assert close(r.statistic, ref.statistic) and close(r.pvalue, ref.pvalue, 1e-9, 1e-14)


@settings(max_examples=100, deadline=None)
@given(pairs, alts)
def test_sign_matches_binomtest(data, alt):  # type: ignore[no-untyped-def]
    r = feed(SignTest(alt), data)
    x, y = arrays(data)
    k, m = int(np.sum(y > x)), int(np.sum(y != x))
    if m == 0:
        assert math.isnan(r.pvalue)
        return
    ref = stats.binomtest(k, m, 0.5, alternative=alt)
    assert r.statistic == k and close(r.pvalue, ref.pvalue)
    ci = ref.proportion_ci(0.95, method="exact")
    assert close(r.ci[0], ci.low) and close(r.ci[1], ci.high)


bits = st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1)), min_size=1, max_size=120)


@settings(max_examples=150, deadline=None)
@given(bits, alts)
def test_mcnemar_exact_and_chi2(data, alt):  # type: ignore[no-untyped-def]
    r = feed(McNemar(alt), [(float(a), float(b)) for a, b in data])
    b = sum(1 for a, c in data if a == 1 and c == 0)
    c = sum(1 for a, cc in data if a == 0 and cc == 1)
    if b + c < 25:
        ref = stats.binomtest(c, b + c, 0.5, alternative=alt).pvalue if b + c else 1.0
    elif alt == "two-sided":
        ref = stats.chi2.sf((abs(b - c) - 1) ** 2 / (b + c), 1)
        assert close(r.statistic, (abs(b - c) - 1) ** 2 / (b + c))
    else:
        z = (c - b - (1 if alt == "greater" else -1)) / math.sqrt(b + c)
        ref = stats.norm.sf(z) if alt == "greater" else stats.norm.cdf(z)
    assert close(r.pvalue, ref)
    assert close(r.effect, (c - b) / len(data))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(grid, grid), min_size=2, max_size=60))
def test_ks_matches_ks_2samp(data):  # type: ignore[no-untyped-def]
    r = feed(KS(), data)
    x, y = arrays(data)
    ref = quiet(stats.ks_2samp, x, y)  # "auto" = exact at these sizes
    assert close(r.statistic, ref.statistic) and close(r.pvalue, ref.pvalue, 1e-9, 1e-14)
    small = feed(KS(exact_max=0), data)
    ref = quiet(stats.ks_2samp, x, y, method="asymp")
    assert close(small.statistic, ref.statistic) and close(small.pvalue, ref.pvalue, 1e-9, 1e-14)


def test_ks_asymp_close_to_exact_documented_tolerance() -> None:
    rng = np.random.default_rng(5)
    for n in (1000, 2000):
        for _ in range(5):
            x, y = rng.normal(size=n), rng.normal(0.05, 1, size=n)
            r = feed(KS(exact_max=0), list(zip(x, y, strict=True)))
            assert abs(r.pvalue - stats.ks_2samp(x, y, method="exact").pvalue) < 0.03


@settings(max_examples=150, deadline=None)
@given(st.one_of(pairs, wide_pairs), alts)
def test_mannwhitney_matches_scipy_asymptotic(data, alt):  # type: ignore[no-untyped-def]
    r = feed(MannWhitney(alt), data)
    x, y = arrays(data)
    if np.ptp(np.concatenate([x, y])) == 0:
        return  # all values tied: scipy returns nan
    ref = quiet(stats.mannwhitneyu, y, x, alternative=alt, method="asymptotic")
    assert close(r.statistic, ref.statistic) and close(r.pvalue, ref.pvalue, 1e-9, 1e-14)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(grid.map(abs), grid.map(abs)), min_size=1, max_size=60),
    st.sampled_from([0.5, 0.95, 0.99]),
)
def test_quantile_ratio_matches_numpy(data, q):  # type: ignore[no-untyped-def]
    r = feed(QuantileRatio(q), data)
    x, y = arrays(data)
    qx, qy = np.quantile(x, q), np.quantile(y, q)
    if qx == 0:
        return
    assert close(r.statistic, qy / qx)
    assert r.ci[0] <= r.statistic * (1 + 1e-12) and r.statistic <= r.ci[1] * (1 + 1e-12)


@settings(max_examples=100, deadline=None)
@given(bits, alts)
def test_two_proportions_matches_chi2_contingency(data, alt):  # type: ignore[no-untyped-def]
    r = feed(TwoProportions(alt), [(float(a), float(b)) for a, b in data])
    n = len(data)
    kl, kc = sum(a for a, _ in data), sum(b for _, b in data)
    if kl + kc in (0, 2 * n):
        assert r.pvalue == 1.0
        return
    ref = stats.chi2_contingency([[kc, n - kc], [kl, n - kl]], correction=False)
    assert close(r.statistic**2, ref.statistic)
    if alt == "two-sided":
        assert close(r.pvalue, ref.pvalue)


labels = st.sampled_from(["a", "b", "c", "d"])
label_pairs = st.lists(st.tuples(labels, labels), min_size=1, max_size=80)


def table(data):  # type: ignore[no-untyped-def]
    keys = sorted({v for p in data for v in p})
    return np.array([[sum(1 for p in data if p[i] == k) for k in keys] for i in (0, 1)], float)


@settings(max_examples=150, deadline=None)
@given(label_pairs)
def test_chi2_matches_chi2_contingency(data):  # type: ignore[no-untyped-def]
    r = feed(ChiSquare(), data)
    t = table(data)
    if t.shape[1] == 1:
        assert r.pvalue == 1.0
        return
    ref = stats.chi2_contingency(t)
    assert close(r.statistic, ref.statistic) and close(r.pvalue, ref.pvalue)


@settings(max_examples=100, deadline=None)
@given(label_pairs)
def test_psi_matches_symmetric_entropy(data):  # type: ignore[no-untyped-def]
    r = feed(PSI(), data)
    t = table(data) + 0.5
    ref = stats.entropy(t[1], t[0]) + stats.entropy(t[0], t[1])
    assert close(r.statistic, ref, 1e-9, 1e-12)


@settings(max_examples=100, deadline=None)
@given(label_pairs, st.sampled_from([0.0, 0.05, 0.2]))
def test_agreement_matches_binomtest(data, tol):  # type: ignore[no-untyped-def]
    r = feed(Agreement(tol), data)
    k = sum(1 for a, b in data if a == b)
    ref = stats.binomtest(k, len(data), 1.0 - tol, alternative="less")
    assert close(r.statistic, k / len(data)) and close(r.pvalue, ref.pvalue)
    ci = stats.binomtest(k, len(data)).proportion_ci(0.95, method="wilson")
    assert close(r.ci[0], ci.low) and close(r.ci[1], ci.high)


@pytest.mark.parametrize("two_sided", [False, True])
@pytest.mark.parametrize(
    ("s", "v", "rho"), [(0.0, 1.0, 1.0), (3.0, 10.0, 2.0), (-2.0, 5.0, 0.5), (25.0, 400.0, 30.0)]
)
def test_mixture_closed_form_matches_numerical_integral(s, v, rho, two_sided):  # type: ignore[no-untyped-def]
    dens = math.sqrt(rho / (2 * math.pi))

    def f(t: float) -> float:
        return math.exp(t * s - t * t * v / 2 - rho * t * t / 2) * dens

    lo = -math.inf if two_sided else 0.0
    ref = integrate.quad(f, lo, math.inf)[0] * (1 if two_sided else 2)
    assert close(math.exp(log_evalue(s, v, rho, two_sided)), ref, 1e-7)


def test_msprt_uses_sums_of_the_window() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=500), rng.normal(0.1, 1, size=500)
    m = MixtureSPRT("greater", null=0.02, min_samples=10)
    r = feed(m, list(zip(x, y, strict=True)))
    d = y - x - 0.02
    scale = float(np.sum((y - x)[:10] ** 2) / 10)
    from streams.stats.sequential import mixture_rho

    rho = mixture_rho(scale, 0.05, 2000.0)
    le = log_evalue(float(d.sum()), float(np.sum(d * d)), rho, False)
    assert close(r.evalue, math.exp(le), 1e-9) and close(r.pvalue, min(1, math.exp(-le)), 1e-9)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=30))
def test_bh_matches_scipy(p):  # type: ignore[no-untyped-def]
    ref = stats.false_discovery_control(p, method="bh")
    assert all(close(a, b) for a, b in zip(benjamini_hochberg(p), ref, strict=True))
