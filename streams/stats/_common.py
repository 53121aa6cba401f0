"""Small numeric helpers shared by the tests (p-values from z and t, binomial tests)."""

from __future__ import annotations

import math

from scipy import special, stats

NAN = float("nan")


def p_from_z(z: float, alternative: str) -> float:
    """p-value of a standard-normal statistic ``z`` (``greater``: candidate above live)."""
    if math.isnan(z):
        return NAN
    if alternative == "greater":
        return float(special.ndtr(-z))
    if alternative == "less":
        return float(special.ndtr(z))
    return min(1.0, 2.0 * float(special.ndtr(-abs(z))))


def p_from_t(t: float, df: float, alternative: str) -> float:
    """p-value of a Student-t statistic with ``df`` degrees of freedom."""
    if math.isnan(t):
        return NAN
    if alternative == "greater":
        return float(special.stdtr(df, -t))
    if alternative == "less":
        return float(special.stdtr(df, t))
    return min(1.0, 2.0 * float(special.stdtr(df, -abs(t))))


def z_quantile(confidence: float, alternative: str) -> float:
    """Normal quantile for a two-sided (or one-sided) interval at ``confidence``."""
    tail = 1.0 - confidence if alternative != "two-sided" else (1.0 - confidence) / 2.0
    return float(special.ndtri(1.0 - tail))


def interval(est: float, half_lo: float, half_hi: float, alternative: str) -> tuple[float, float]:
    """``(est - half_lo, est + half_hi)`` opened to infinity on the side the test ignores."""
    lo = -math.inf if alternative == "less" else est - half_lo
    hi = math.inf if alternative == "greater" else est + half_hi
    return (lo, hi)


def binom_test(k: int, n: int, p: float, alternative: str) -> float:
    """Exact binomial test p-value (scipy.stats.binomtest), ``nan`` when ``n == 0``."""
    if n == 0:
        return NAN
    return float(stats.binomtest(k, n, p, alternative=alternative).pvalue)


def proportion_ci(
    k: int, n: int, confidence: float, method: str, alternative: str = "two-sided"
) -> tuple[float, float]:
    """Binomial proportion interval from scipy (``exact`` Clopper-Pearson or ``wilson``)."""
    if n == 0:
        return (NAN, NAN)
    ci = stats.binomtest(k, n, alternative=alternative).proportion_ci(
        confidence_level=confidence, method=method
    )
    return (float(ci.low), float(ci.high))
