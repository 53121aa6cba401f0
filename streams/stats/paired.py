"""Paired tests on per-request differences ``d = candidate - live``.

* :class:`PairedT` -- paired t-test (``scipy.stats.ttest_rel(cand, live)``), O(1) update.
* :class:`SignTest` -- sign test (``scipy.stats.binomtest`` on positive vs negative signs).
* :class:`McNemar` -- McNemar on 0/1 correctness: exact binomial below 25 discordant pairs,
  chi-square with continuity correction above.

``alternative="greater"`` means the candidate's values are larger than live's.  The
signed-rank test, :class:`~streams.stats.signed_rank.Wilcoxon`, has its own module.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from operator import gt, lt
from typing import Self

from scipy import special, stats

from streams.stats._common import (
    NAN,
    binom_test,
    interval,
    p_from_t,
    p_from_z,
    proportion_ci,
    z_quantile,
)
from streams.stats.results import (
    TestResult,
    check_alternative,
    check_finite_many,
    reject_nonfinite,
)

__all__ = ["McNemar", "PairedT", "SignTest"]


class PairedT:
    """Paired t-test on ``cand - live`` from exact running sums (revertible without error).

    The differences are floats, i.e. dyadic rationals: the sums of ``d`` and ``d**2`` are kept
    as integers scaled by ``2**e`` and ``2**(2 e)`` (``e`` grows to the finest binary exponent
    seen), so that adding and reverting are exact and a window forgets an outlier of 1e12
    completely (Welford's update with revert does not: cancellation left a variance of 64
    where scipy finds 1).  Mean and variance are rounded once, when read, from the exact
    integers.  A non-finite pair raises :class:`~streams.stats.results.NonFiniteError`.

    Examples
    --------
    >>> t = PairedT()
    >>> for live, cand in [(1.0, 1.4), (2.0, 2.1), (3.0, 3.5), (2.0, 2.2)]:
    ...     _ = t.update(live, cand)
    >>> r = t.get()
    >>> round(r.effect, 3), round(r.pvalue, 4)
    (0.3, 0.0462)
    """

    __slots__ = ("_e", "_s1", "_s2", "_sx", "alternative", "confidence", "n")

    def __init__(self, alternative: str = "two-sided", confidence: float = 0.95) -> None:
        self.alternative = check_alternative(alternative)
        self.confidence = confidence
        self.reset()

    def reset(self) -> Self:
        """Forget everything."""
        self.n = 0
        self._e = 0  # binary scale exponent of the sums of d
        self._s1 = self._s2 = 0  # sum(d) * 2**e and sum(d**2) * 2**(2 e), exact integers
        self._sx = 0.0  # sum of live values (descriptive only)
        return self

    def update(self, x: float, y: float) -> Self:
        """Add the pair (live ``x``, candidate ``y``)."""
        d = y - x
        q = d * d
        if q - q:  # nan unless d and d**2 are finite
            reject_nonfinite(x, y)
        num, den = d.as_integer_ratio()
        k = den.bit_length() - 1
        e = self._e
        if k > e:
            self._rescale(k)
            e = k
        v = num << (e - k)
        self.n += 1
        self._s1 += v
        self._s2 += v * v
        self._sx += x
        return self

    def revert(self, x: float, y: float) -> Self:
        """Remove a pair added earlier (exactly)."""
        if self.n <= 1:
            return self.reset()
        num, den = (y - x).as_integer_ratio()
        v = num << (self._e - den.bit_length() + 1)
        self.n -= 1
        self._s1 -= v
        self._s2 -= v * v
        self._sx -= x
        return self

    def update_many(self, xs: Sequence[float], ys: Sequence[float]) -> Self:
        """Add the pairs ``zip(xs, ys)`` (as many :meth:`update` calls; a window feeds them
        so when it is read, the sums being exact and so independent of the order)."""
        check_finite_many(xs, ys)
        self._add_many(xs, ys, 1)
        return self

    def revert_many(self, xs: Sequence[float], ys: Sequence[float]) -> Self:
        """Remove pairs added earlier (as many :meth:`revert` calls)."""
        self._add_many(xs, ys, -1)
        if self.n <= 0:
            self.reset()
        return self

    def _add_many(self, xs: Sequence[float], ys: Sequence[float], sign: int) -> None:
        e = self._e
        s1 = s2 = 0
        for y, x in zip(ys, xs, strict=True):
            num, den = (y - x).as_integer_ratio()
            k = den.bit_length() - 1
            if k > e:  # a finer value: rescale what this batch summed so far
                s1 <<= k - e
                s2 <<= 2 * (k - e)
                e = k
            v = num << (e - k)
            s1 += v
            s2 += v * v
        if e > self._e:
            self._rescale(e)
        if sign > 0:
            self._s1 += s1
            self._s2 += s2
            self._sx += sum(xs)
        else:
            self._s1 -= s1
            self._s2 -= s2
            self._sx -= sum(xs)
        self.n += sign * len(xs)

    def _rescale(self, e: int) -> None:
        """Raise the scale exponent to ``e`` (exact: the sums are shifted left)."""
        shift = e - self._e
        self._s1 <<= shift
        self._s2 <<= 2 * shift
        self._e = e

    def merge(self, other: PairedT) -> Self:
        """Fold another partial state in (exact)."""
        if other.n == 0:
            return self
        e = max(self._e, other._e)
        self._rescale(e)
        shift = e - other._e
        self._s1 += other._s1 << shift
        self._s2 += other._s2 << 2 * shift
        self._sx += other._sx
        self.n += other.n
        return self

    @property
    def mean(self) -> float:
        """Mean difference ``cand - live`` (correctly rounded)."""
        return self._s1 / (self.n << self._e) if self.n else NAN

    @property
    def live_mean(self) -> float:
        """Mean of the live values."""
        return self._sx / self.n if self.n else NAN

    @property
    def variance(self) -> float:
        """Sample variance (ddof=1) of the differences (correctly rounded)."""
        n = self.n
        if n < 2:
            return NAN
        return (n * self._s2 - self._s1 * self._s1) / ((n * (n - 1)) << (2 * self._e))

    def get(self) -> TestResult:
        """t statistic, p-value, mean difference and its t interval."""
        n, alt = self.n, self.alternative
        if n < 2:
            return TestResult("paired_t", NAN, NAN, self.mean, (NAN, NAN), n, alternative=alt)
        se = math.sqrt(self.variance / n)
        mean = self.mean
        s1 = self._s1
        ss = n * self._s2 - s1 * s1  # exact: n (n - 1) 2**(2 e) times the variance
        # t**2 = s1**2 (n - 1) / ss, free of the scale: one rounding, no underflow
        sign = -1.0 if s1 < 0 else 1.0
        t = (
            (NAN if s1 == 0 else sign * math.inf)
            if ss == 0
            else sign * math.sqrt(s1 * s1 * (n - 1) / ss)
        )
        df = n - 1
        tail = 1.0 - self.confidence if alt != "two-sided" else (1.0 - self.confidence) / 2
        half = float(special.stdtrit(df, 1.0 - tail)) * se
        ci = interval(mean, half, half, alt)
        return TestResult("paired_t", t, p_from_t(t, df, alt), mean, ci, n, alternative=alt)


class SignTest:
    """Sign test: binomial test of positive vs negative differences (zeros dropped).

    ``effect`` is the share of positive differences among non-zero ones, with a Clopper-Pearson
    interval.

    Examples
    --------
    >>> s = SignTest()
    >>> for live, cand in [(1.0, 2.0)] * 9 + [(2.0, 1.0)]:
    ...     _ = s.update(live, cand)
    >>> round(s.get().pvalue, 4), s.get().effect
    (0.0215, 0.9)
    """

    __slots__ = ("alternative", "confidence", "n", "n_neg", "n_pos")

    def __init__(self, alternative: str = "two-sided", confidence: float = 0.95) -> None:
        self.alternative = check_alternative(alternative)
        self.confidence = confidence
        self.reset()

    def reset(self) -> Self:
        """Forget everything."""
        self.n = self.n_pos = self.n_neg = 0
        return self

    def update(self, x: float, y: float) -> Self:
        """Add the pair (live ``x``, candidate ``y``)."""
        d = y - x
        if d * d - d * d:  # nan unless x, y, their difference and its square are finite
            reject_nonfinite(x, y)
        self.n += 1
        if y > x:
            self.n_pos += 1
        elif y < x:
            self.n_neg += 1
        return self

    def revert(self, x: float, y: float) -> Self:
        """Remove a pair added earlier."""
        self.n -= 1
        if y > x:
            self.n_pos -= 1
        elif y < x:
            self.n_neg -= 1
        return self

    def update_many(self, xs: Sequence[float], ys: Sequence[float]) -> Self:
        """Add the pairs ``zip(xs, ys)`` (as many :meth:`update` calls)."""
        check_finite_many(xs, ys)
        self.n += len(xs)
        self.n_pos += sum(map(gt, ys, xs))
        self.n_neg += sum(map(lt, ys, xs))
        return self

    def revert_many(self, xs: Sequence[float], ys: Sequence[float]) -> Self:
        """Remove pairs added earlier (as many :meth:`revert` calls)."""
        self.n -= len(xs)
        self.n_pos -= sum(map(gt, ys, xs))
        self.n_neg -= sum(map(lt, ys, xs))
        return self

    def merge(self, other: SignTest) -> Self:
        """Fold another partial state in."""
        self.n += other.n
        self.n_pos += other.n_pos
        self.n_neg += other.n_neg
        return self

    def get(self) -> TestResult:
        """Number of positive differences, exact binomial p-value, share positive."""
        k, m, alt = self.n_pos, self.n_pos + self.n_neg, self.alternative
        p = binom_test(k, m, 0.5, alt)
        eff = k / m if m else NAN
        ci = proportion_ci(k, m, self.confidence, "exact", alt)
        return TestResult("sign", float(k), p, eff, ci, self.n, "all", "share_positive", alt)


class McNemar:
    """McNemar test on paired 0/1 outcomes (e.g. ``correct``).

    ``b`` counts live-right/candidate-wrong pairs and ``c`` live-wrong/candidate-right ones.
    Below ``exact_below`` discordant pairs the p-value is the exact binomial test of ``c`` out
    of ``b + c`` (statistic ``min(b, c)``); above, the continuity-corrected chi-square
    ``(|b - c| - 1)**2 / (b + c)`` (one-sided: the signed square root).  ``effect`` is the
    accuracy difference ``(c - b) / n`` with a Wald interval for paired proportions.

    Examples
    --------
    >>> m = McNemar()
    >>> for live, cand in [(1, 0)] * 10 + [(0, 1)] * 2 + [(1, 1)] * 88:
    ...     _ = m.update(live, cand)
    >>> round(m.get().pvalue, 4), m.get().effect
    (0.0386, -0.08)
    """

    __slots__ = ("alternative", "b", "c", "confidence", "exact_below", "n")

    def __init__(
        self, alternative: str = "two-sided", confidence: float = 0.95, exact_below: int = 25
    ) -> None:
        self.alternative = check_alternative(alternative)
        self.confidence = confidence
        self.exact_below = exact_below
        self.reset()

    def reset(self) -> Self:
        """Forget everything."""
        self.n = self.b = self.c = 0
        return self

    def update(self, x: float, y: float) -> Self:
        """Add the pair (live ``x``, candidate ``y``), values 0/1 (> 0.5 counts as 1)."""
        d = y - x
        if d * d - d * d:  # nan unless x, y, their difference and its square are finite
            reject_nonfinite(x, y)
        self.n += 1
        if x > 0.5:
            if y <= 0.5:
                self.b += 1
        elif y > 0.5:
            self.c += 1
        return self

    def revert(self, x: float, y: float) -> Self:
        """Remove a pair added earlier."""
        self.n -= 1
        if x > 0.5:
            if y <= 0.5:
                self.b -= 1
        elif y > 0.5:
            self.c -= 1
        return self

    def update_many(self, xs: Sequence[float], ys: Sequence[float]) -> Self:
        """Add the pairs ``zip(xs, ys)`` (as many :meth:`update` calls)."""
        check_finite_many(xs, ys)
        b, c = _discordant(xs, ys)
        self.n += len(xs)
        self.b += b
        self.c += c
        return self

    def revert_many(self, xs: Sequence[float], ys: Sequence[float]) -> Self:
        """Remove pairs added earlier (as many :meth:`revert` calls)."""
        b, c = _discordant(xs, ys)
        self.n -= len(xs)
        self.b -= b
        self.c -= c
        return self

    def merge(self, other: McNemar) -> Self:
        """Fold another partial state in."""
        self.n += other.n
        self.b += other.b
        self.c += other.c
        return self

    def get(self) -> TestResult:
        """Statistic, p-value, accuracy difference (candidate - live) and Wald interval."""
        b, c, n, alt = self.b, self.c, self.n, self.alternative
        m = b + c
        if n == 0:
            return TestResult("mcnemar", NAN, NAN, NAN, (NAN, NAN), 0, "all", "accuracy_diff", alt)
        if m < self.exact_below:
            stat = float(min(b, c))
            p = binom_test(c, m, 0.5, alt) if m else 1.0
        elif alt == "two-sided":
            stat = (abs(b - c) - 1.0) ** 2 / m
            p = float(stats.chi2.sf(stat, 1))
        else:
            sign = 1.0 if alt == "greater" else -1.0
            stat = (c - b - sign) / math.sqrt(m)
            p = p_from_z(stat, alt)
        eff = (c - b) / n
        se = math.sqrt(max(0.0, m - (c - b) ** 2 / n)) / n
        half = z_quantile(self.confidence, alt) * se
        ci = interval(eff, half, half, alt)
        return TestResult("mcnemar", stat, p, eff, ci, n, "all", "accuracy_diff", alt)


def _discordant(xs: Sequence[float], ys: Sequence[float]) -> tuple[int, int]:
    """McNemar's ``b`` and ``c`` over the pairs ``zip(xs, ys)``, as :meth:`McNemar.update`."""
    b = c = 0
    for x, y in zip(xs, ys, strict=True):
        if x > 0.5:
            if y <= 0.5:
                b += 1
        elif y > 0.5:
            c += 1
    return b, c
