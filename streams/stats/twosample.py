"""Two-sample comparisons of the live and candidate value distributions.

* :class:`KS` -- two-sample Kolmogorov-Smirnov (``scipy.stats.ks_2samp(live, cand,
  method="asymp")``), for numeric predictions without labels.
* :class:`MannWhitney` -- Mann-Whitney U (``scipy.stats.mannwhitneyu(cand, live,
  method="asymptotic")``), for latency.
* :class:`QuantileRatio` -- candidate / live quantile (p50, p95, p99) with a distribution-free
  order-statistic interval.
* :class:`TwoProportions` -- pooled two-proportion z-test for rates such as ``error`` or
  ``timeout`` (equals ``scipy.stats.chi2_contingency(table, correction=False)``).

All keep sorted samples (O(log n) search per update) or counts; all are revertible and mergeable.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from itertools import repeat
from operator import gt
from typing import ClassVar, Self

import numpy as np
from scipy import stats

from streams.stats._common import NAN, interval, p_from_z, z_quantile
from streams.stats._sorted import SortedList
from streams.stats.results import (
    TestResult,
    check_alternative,
    check_finite_many,
    reject_nonfinite,
)

__all__ = ["KS", "MannWhitney", "QuantileRatio", "TwoProportions"]


class _TwoSorted:
    """Shared state: the live sample and the candidate sample, each sorted."""

    __slots__ = ("cand", "live")
    shared_state: ClassVar[tuple[str, ...]] = ("live", "cand")  # see windows.share_state

    def __init__(self) -> None:
        self.live = SortedList()
        self.cand = SortedList()

    @property
    def n(self) -> int:
        """Pairs currently held."""
        return len(self.live)

    def reset(self) -> Self:
        """Forget everything."""
        self.live.clear()
        self.cand.clear()
        return self

    def update(self, x: float, y: float) -> Self:
        """Add live value ``x`` and candidate value ``y``."""
        d = y - x
        if d * d - d * d:  # nan unless x, y, their difference and its square are finite
            reject_nonfinite(x, y)
        self.live.add(x)
        self.cand.add(y)
        return self

    def revert(self, x: float, y: float) -> Self:
        """Remove values added earlier."""
        self.live.remove(x)
        self.cand.remove(y)
        return self

    def update_many(self, xs: Sequence[float], ys: Sequence[float]) -> Self:
        """Add the pairs ``zip(xs, ys)`` (as many :meth:`update` calls)."""
        check_finite_many(xs, ys)
        self.live.add_many(xs)
        self.cand.add_many(ys)
        return self

    def revert_many(self, xs: Sequence[float], ys: Sequence[float]) -> Self:
        """Remove pairs added earlier (as many :meth:`revert` calls)."""
        self.live.remove_many(xs)
        self.cand.remove_many(ys)
        return self

    def merge(self, other: Self) -> Self:
        """Fold another partial state in."""
        self.live.update(other.live)
        self.cand.update(other.cand)
        return self


class KS(_TwoSorted):
    """Two-sided two-sample Kolmogorov-Smirnov test.

    ``effect`` is the statistic D with a DKW-style interval ``D -/+ sqrt(log(2/a)/2 * (1/m +
    1/n))``.  Up to ``exact_max`` values per side the p-value is scipy's exact one
    (``ks_2samp(..., method="exact")`` on the window); above, Smirnov's asymptotic distribution
    exactly as ``ks_2samp(..., method="asymp")``.  scipy's ``"auto"`` stays exact up to 10,000
    per side; the asymptotic p-value then differs from it by < 0.03 absolute (tested, n >= 1000).

    Examples
    --------
    >>> k = KS()
    >>> for i in range(50):
    ...     _ = k.update(float(i), float(i) + 20.0)
    >>> k.get().statistic
    0.4
    """

    __slots__ = ("confidence", "exact_max")

    def __init__(self, confidence: float = 0.95, exact_max: int = 1000) -> None:
        super().__init__()
        self.confidence = confidence
        self.exact_max = exact_max

    def get(self) -> TestResult:
        """D statistic, asymptotic p-value, D with interval."""
        n1, n2 = len(self.live), len(self.cand)
        if n1 == 0 or n2 == 0:
            return TestResult("ks", NAN, NAN, NAN, (NAN, NAN), self.n, "all", "ks_d")
        a, b = self.live.to_array(), self.cand.to_array()
        allv = np.concatenate([a, b])
        cdf1 = np.searchsorted(a, allv, side="right") / n1
        cdf2 = np.searchsorted(b, allv, side="right") / n2
        d = float(np.max(np.abs(cdf1 - cdf2)))
        m, n = max(n1, n2), min(n1, n2)
        en = m * n / (m + n)
        if m <= self.exact_max:
            with warnings.catch_warnings():  # scipy falls back to asymp, as in "auto"
                warnings.simplefilter("ignore", RuntimeWarning)
                p = float(stats.ks_2samp(a, b, method="exact").pvalue)
        else:
            p = float(np.clip(stats.kstwo.sf(d, np.round(en)), 0.0, 1.0))
        eps = math.sqrt(math.log(2.0 / (1.0 - self.confidence)) / 2.0 * (1 / n1 + 1 / n2))
        ci = (max(0.0, d - eps), min(1.0, d + eps))
        return TestResult("ks", d, p, d, ci, self.n, "all", "ks_d")


class MannWhitney(_TwoSorted):
    """Mann-Whitney U test of candidate vs live values (normal approximation, tie and continuity
    corrected, as ``mannwhitneyu(cand, live, method="asymptotic")``).

    ``statistic`` is U of the candidate sample; ``effect`` is the common-language effect size
    ``U / (n1 * n2)`` = P(cand > live) + P(tie) / 2, with a normal-approximation interval.

    Examples
    --------
    >>> u = MannWhitney()
    >>> for i in range(20):
    ...     _ = u.update(float(i), float(i) + 5.0)
    >>> u.get().statistic, round(u.get().effect, 4)
    (287.5, 0.7188)
    """

    __slots__ = ("alternative", "confidence")

    def __init__(self, alternative: str = "two-sided", confidence: float = 0.95) -> None:
        super().__init__()
        self.alternative = check_alternative(alternative)
        self.confidence = confidence

    def get(self) -> TestResult:
        """U statistic, p-value, common-language effect size with interval."""
        n1, n2, alt = len(self.cand), len(self.live), self.alternative
        if n1 == 0 or n2 == 0:
            return TestResult("mannwhitney", NAN, NAN, NAN, (NAN, NAN), self.n, "all", "cles", alt)
        y, x = self.cand.to_array(), self.live.to_array()
        lo = np.searchsorted(x, y, "left")
        hi = np.searchsorted(x, y, "right")
        u1 = float(np.sum(lo) + 0.5 * np.sum(hi - lo))
        u2 = n1 * n2 - u1
        n = n1 + n2
        ties = _combined_tie_term(x, y, hi - lo)
        s = math.sqrt(n1 * n2 / 12.0 * ((n + 1) - ties / (n * (n - 1))))
        u, f = {"greater": (u1, 1.0), "less": (u2, 1.0)}.get(alt, (max(u1, u2), 2.0))
        p = 1.0 if s == 0.0 else min(1.0, f * p_from_z((u - n1 * n2 / 2.0 - 0.5) / s, "greater"))
        eff = u1 / (n1 * n2)
        half = z_quantile(self.confidence, alt) * s / (n1 * n2)
        lo_ci, hi_ci = interval(eff, half, half, alt)
        ci = (max(0.0, lo_ci), min(1.0, hi_ci))
        return TestResult("mannwhitney", u1, p, eff, ci, self.n, "all", "cles", alt)


def _runs(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of sorted ``a`` and how often each occurs."""
    starts = np.concatenate(([0], np.flatnonzero(np.diff(a)) + 1))
    return a[starts], np.diff(np.concatenate((starts, [a.size])))


def _combined_tie_term(x: np.ndarray, y: np.ndarray, x_count_at_y: np.ndarray) -> float:
    """``sum(t**3 - t)`` over ties of the pooled sample, without sorting it."""
    _, cx = _runs(x)
    first = np.concatenate(([0], np.flatnonzero(np.diff(y)) + 1))
    cy = np.diff(np.concatenate((first, [y.size]))).astype(np.float64)
    cxy = x_count_at_y[first].astype(np.float64)  # live values equal to each distinct y
    t = cy + cxy
    cxf = cx.astype(np.float64)
    return float(np.sum(cxf**3 - cxf) + np.sum(t**3 - t) - np.sum(cxy**3 - cxy))


def _quantile(s: SortedList, q: float) -> float:
    """numpy's default (linear) quantile of a sorted list."""
    h = (len(s) - 1) * q
    lo = math.floor(h)
    a = s[lo]
    return a if lo + 1 >= len(s) else a + (h - lo) * (s[lo + 1] - a)


def _order_ci(s: SortedList, q: float, conf: float) -> tuple[float, float]:
    """Distribution-free interval for the q-quantile from order statistics."""
    n = len(s)
    tail = (1.0 - conf) / 2.0
    lo = int(stats.binom.ppf(tail, n, q)) - 1
    hi = int(stats.binom.ppf(1.0 - tail, n, q))
    return (s[max(lo, 0)], s[min(hi, n - 1)])


class QuantileRatio(_TwoSorted):
    """Ratio of the candidate's to live's ``q``-quantile (e.g. p95 latency).

    Descriptive: ``pvalue`` is ``nan``; ``effect`` is the ratio and ``ci`` a conservative
    interval combining the two order-statistic intervals (each at ``1 - (1 - confidence)/2``).
    Quantiles use numpy's default linear interpolation.

    Examples
    --------
    >>> r = QuantileRatio(0.5)
    >>> for i in range(1, 101):
    ...     _ = r.update(float(i), 2.0 * i)
    >>> r.get().statistic
    2.0
    """

    __slots__ = ("confidence", "q")

    def __init__(self, q: float = 0.95, confidence: float = 0.95) -> None:
        super().__init__()
        if not 0.0 < q < 1.0:
            raise ValueError(f"quantile must be in (0, 1), got {q}")
        self.q = q
        self.confidence = confidence

    def get(self) -> TestResult:
        """Quantile ratio and its interval."""
        name = f"p{round(self.q * 100):d}_ratio"
        if self.n == 0:
            return TestResult("quantile_ratio", NAN, NAN, NAN, (NAN, NAN), 0, "all", name)
        ql, qc = _quantile(self.live, self.q), _quantile(self.cand, self.q)
        ratio = qc / ql if ql != 0 else (NAN if qc == 0 else math.inf)
        each = 1.0 - (1.0 - self.confidence) / 2.0
        l_lo, l_hi = _order_ci(self.live, self.q, each)
        c_lo, c_hi = _order_ci(self.cand, self.q, each)
        ci = (c_lo / l_hi if l_hi > 0 else NAN, c_hi / l_lo if l_lo > 0 else math.inf)
        return TestResult(
            "quantile_ratio", ratio, NAN, ratio, ci, self.n, "all", name,
            live_value=ql, candidate_value=qc,
        )  # fmt: skip


class TwoProportions:
    """Pooled two-proportion z-test of the candidate's vs live's rate of a 0/1 outcome.

    ``effect`` is ``p_cand - p_live`` with an unpooled Wald interval.  Live and candidate
    counts are treated as independent samples of equal size (use :class:`McNemar` for the
    paired version).

    Examples
    --------
    >>> t = TwoProportions()
    >>> for i in range(1000):
    ...     _ = t.update(float(i % 100 == 0), float(i % 25 == 0))
    >>> round(t.get().effect, 3), round(t.get().pvalue, 4)
    (0.03, 0.0)
    """

    __slots__ = ("alternative", "confidence", "k_cand", "k_live", "n")

    def __init__(self, alternative: str = "two-sided", confidence: float = 0.95) -> None:
        self.alternative = check_alternative(alternative)
        self.confidence = confidence
        self.reset()

    def reset(self) -> Self:
        """Forget everything."""
        self.n = self.k_live = self.k_cand = 0
        return self

    def update(self, x: float, y: float) -> Self:
        """Add live outcome ``x`` and candidate outcome ``y`` (> 0.5 counts as 1)."""
        d = y - x
        if d * d - d * d:  # nan unless x, y, their difference and its square are finite
            reject_nonfinite(x, y)
        self.n += 1
        if x > 0.5:
            self.k_live += 1
        if y > 0.5:
            self.k_cand += 1
        return self

    def revert(self, x: float, y: float) -> Self:
        """Remove outcomes added earlier."""
        self.n -= 1
        if x > 0.5:
            self.k_live -= 1
        if y > 0.5:
            self.k_cand -= 1
        return self

    def update_many(self, xs: Sequence[float], ys: Sequence[float]) -> Self:
        """Add the pairs ``zip(xs, ys)`` (as many :meth:`update` calls)."""
        check_finite_many(xs, ys)
        self.n += len(xs)
        self.k_live += sum(map(gt, xs, repeat(0.5)))
        self.k_cand += sum(map(gt, ys, repeat(0.5)))
        return self

    def revert_many(self, xs: Sequence[float], ys: Sequence[float]) -> Self:
        """Remove pairs added earlier (as many :meth:`revert` calls)."""
        self.n -= len(xs)
        self.k_live -= sum(map(gt, xs, repeat(0.5)))
        self.k_cand -= sum(map(gt, ys, repeat(0.5)))
        return self

    def merge(self, other: TwoProportions) -> Self:
        """Fold another partial state in."""
        self.n += other.n
        self.k_live += other.k_live
        self.k_cand += other.k_cand
        return self

    def get(self) -> TestResult:
        """z statistic, p-value, rate difference with interval."""
        n, alt = self.n, self.alternative
        if n == 0:
            return TestResult(
                "two_proportions", NAN, NAN, NAN, (NAN, NAN), 0, "all", "rate_diff", alt
            )
        p1, p0 = self.k_cand / n, self.k_live / n
        pool = (self.k_cand + self.k_live) / (2.0 * n)
        se0 = math.sqrt(pool * (1.0 - pool) * 2.0 / n)
        z = (p1 - p0) / se0 if se0 > 0 else NAN
        eff = p1 - p0
        half = z_quantile(self.confidence, alt) * math.sqrt((p1 * (1 - p1) + p0 * (1 - p0)) / n)
        ci = interval(eff, half, half, alt)
        p = p_from_z(z, alt) if se0 > 0 else 1.0
        return TestResult("two_proportions", z, p, eff, ci, n, "all", "rate_diff", alt)
