"""Label-free comparisons of categorical predictions (e.g. ``predicted_class``).

* :class:`ChiSquare` -- chi-square test of homogeneity of the live vs candidate label
  distributions (``scipy.stats.chi2_contingency`` on the 2 x K table, Yates-corrected when
  K = 2 as scipy's default).  ``effect`` is Cramer's V.
* :class:`PSI` -- population stability index ``sum((c - l) * log(c / l))`` on add-0.5
  smoothed label shares (the symmetric KL divergence; ``scipy.stats.entropy`` both ways).
  p-value from ``PSI * n_l * n_c / (n_l + n_c) ~ chi2(K - 1)`` (approximate).
* :class:`Agreement` -- share of requests where candidate and live predict the same label;
  binomial test of ``agreement < 1 - tolerance``, Wilson interval.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from operator import eq
from typing import ClassVar, Self

import numpy as np
from scipy import stats

from streams.stats._common import NAN, binom_test, proportion_ci, z_quantile
from streams.stats.results import TestResult

__all__ = ["PSI", "Agreement", "ChiSquare"]


class _Counts:
    """Label counts for the live and the candidate side."""

    __slots__ = ("cand", "confidence", "live")
    shared_state: ClassVar[tuple[str, ...]] = ("live", "cand")  # see windows.share_state

    def __init__(self, confidence: float = 0.95) -> None:
        self.confidence = confidence
        self.live: dict[str, int] = {}
        self.cand: dict[str, int] = {}

    @property
    def n(self) -> int:
        """Pairs currently held."""
        return sum(self.live.values())

    def reset(self) -> Self:
        """Forget everything."""
        self.live.clear()
        self.cand.clear()
        return self

    def update(self, x: str, y: str) -> Self:
        """Add live label ``x`` and candidate label ``y``."""
        live, cand = self.live, self.cand
        live[x] = live.get(x, 0) + 1
        cand[y] = cand.get(y, 0) + 1
        return self

    def revert(self, x: str, y: str) -> Self:
        """Remove labels added earlier."""
        for d, k in ((self.live, x), (self.cand, y)):
            c = d[k] - 1
            if c:
                d[k] = c
            else:
                del d[k]
        return self

    def update_many(self, xs: Sequence[str], ys: Sequence[str]) -> Self:
        """Add the pairs ``zip(xs, ys)`` (as many :meth:`update` calls)."""
        for counts, labels in ((self.live, xs), (self.cand, ys)):
            for k, v in Counter(labels).items():
                counts[k] = counts.get(k, 0) + v
        return self

    def revert_many(self, xs: Sequence[str], ys: Sequence[str]) -> Self:
        """Remove pairs added earlier (as many :meth:`revert` calls)."""
        for counts, labels in ((self.live, xs), (self.cand, ys)):
            for k, v in Counter(labels).items():
                c = counts[k] - v
                if c:
                    counts[k] = c
                else:
                    del counts[k]
        return self

    def merge(self, other: Self) -> Self:
        """Fold another partial state in."""
        for mine, theirs in ((self.live, other.live), (self.cand, other.cand)):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0) + v
        return self

    def table(self) -> np.ndarray:
        """2 x K table (row 0 live, row 1 candidate) over the labels seen, sorted."""
        labels = sorted(set(self.live) | set(self.cand))
        return np.array(
            [[self.live.get(k, 0) for k in labels], [self.cand.get(k, 0) for k in labels]],
            dtype=np.float64,
        )


def _ncp_interval(chi2: float, df: int, conf: float) -> tuple[float, float]:
    """Approximate interval for a chi-square noncentrality (normal approximation)."""
    lam = max(0.0, chi2 - df)
    half = z_quantile(conf, "two-sided") * math.sqrt(2.0 * (df + 2.0 * lam))
    return (max(0.0, chi2 - df - half), max(0.0, chi2 - df + half))


class ChiSquare(_Counts):
    """Chi-square test that live and candidate predict labels with the same frequencies.

    Examples
    --------
    >>> c = ChiSquare()
    >>> for i in range(100):
    ...     _ = c.update("a" if i % 2 else "b", "a" if i % 4 else "b")
    >>> round(c.get().statistic, 3), round(c.get().pvalue, 4)
    (12.288, 0.0005)
    """

    __slots__ = ()

    def get(self) -> TestResult:
        """Chi-square statistic, p-value, Cramer's V with an approximate interval."""
        if self.n == 0:
            return TestResult("chi2", NAN, NAN, NAN, (NAN, NAN), 0, "all", "cramers_v")
        obs = self.table()
        df = obs.shape[1] - 1
        if df == 0:
            return TestResult("chi2", 0.0, 1.0, 0.0, (0.0, 0.0), self.n, "all", "cramers_v")
        total = obs.sum()
        exp = np.outer(obs.sum(axis=1), obs.sum(axis=0)) / total
        if df == 1:
            diff = exp - obs
            obs = obs + np.minimum(0.5, np.abs(diff)) * np.sign(diff)
        chi2 = float(np.sum((obs - exp) ** 2 / exp))
        p = float(stats.chi2.sf(chi2, df))
        lo, hi = _ncp_interval(chi2, df, self.confidence)
        v = math.sqrt(chi2 / total)
        return TestResult(
            "chi2",
            chi2,
            p,
            v,
            (math.sqrt(lo / total), math.sqrt(hi / total)),
            self.n,
            "all",
            "cramers_v",
        )


class PSI(_Counts):
    """Population stability index between the live and candidate label distributions.

    Examples
    --------
    >>> s = PSI()
    >>> for i in range(100):
    ...     _ = s.update("a" if i % 2 else "b", "a" if i % 4 else "b")
    >>> round(s.get().statistic, 4)
    0.2687
    """

    __slots__ = ()

    def shares(self) -> tuple[np.ndarray, np.ndarray]:
        """Add-0.5 smoothed label shares (live, candidate)."""
        t = self.table() + 0.5
        return t[0] / t[0].sum(), t[1] / t[1].sum()

    def get(self) -> TestResult:
        """PSI, approximate chi-square p-value and interval."""
        if self.n == 0:
            return TestResult("psi", NAN, NAN, NAN, (NAN, NAN), 0, "all", "psi")
        pl, pc = self.shares()
        psi = float(np.sum((pc - pl) * np.log(pc / pl)))
        df = pl.size - 1
        h = self.n / 2.0  # n_l * n_c / (n_l + n_c) with n_l = n_c = n
        if df == 0:
            return TestResult("psi", psi, 1.0, psi, (0.0, psi), self.n, "all", "psi")
        p = float(stats.chi2.sf(psi * h, df))
        lo, hi = _ncp_interval(psi * h, df, self.confidence)
        return TestResult("psi", psi, p, psi, (lo / h, max(psi, hi / h)), self.n, "all", "psi")


class Agreement:
    """Share of requests on which the candidate predicts the same label as live.

    ``pvalue`` is the exact binomial test of ``agreement < 1 - tolerance`` (``tolerance`` is the
    disagreement rate accepted, e.g. from an A/A noise floor).

    Examples
    --------
    >>> a = Agreement(tolerance=0.05)
    >>> for i in range(200):
    ...     _ = a.update("x", "x" if i % 10 else "y")
    >>> a.get().statistic, round(a.get().pvalue, 4)
    (0.9, 0.0027)
    """

    __slots__ = ("confidence", "k", "n", "tolerance")

    def __init__(self, tolerance: float = 0.0, confidence: float = 0.95) -> None:
        self.tolerance = tolerance
        self.confidence = confidence
        self.reset()

    def reset(self) -> Self:
        """Forget everything."""
        self.n = self.k = 0
        return self

    def update(self, x: str, y: str) -> Self:
        """Add live label ``x`` and candidate label ``y``."""
        self.n += 1
        if x == y:
            self.k += 1
        return self

    def revert(self, x: str, y: str) -> Self:
        """Remove labels added earlier."""
        self.n -= 1
        if x == y:
            self.k -= 1
        return self

    def update_many(self, xs: Sequence[str], ys: Sequence[str]) -> Self:
        """Add the pairs ``zip(xs, ys)`` (as many :meth:`update` calls)."""
        self.n += len(xs)
        self.k += sum(map(eq, xs, ys))
        return self

    def revert_many(self, xs: Sequence[str], ys: Sequence[str]) -> Self:
        """Remove pairs added earlier (as many :meth:`revert` calls)."""
        self.n -= len(xs)
        self.k -= sum(map(eq, xs, ys))
        return self

    def merge(self, other: Agreement) -> Self:
        """Fold another partial state in."""
        self.n += other.n
        self.k += other.k
        return self

    def get(self) -> TestResult:
        """Agreement rate, p-value against ``1 - tolerance``, Wilson interval."""
        if self.n == 0:
            return TestResult("agreement", NAN, NAN, NAN, (NAN, NAN), 0, "all", "agreement", "less")
        rate = self.k / self.n
        p = binom_test(self.k, self.n, 1.0 - self.tolerance, "less")
        ci = proportion_ci(self.k, self.n, self.confidence, "wilson")
        return TestResult("agreement", rate, p, rate, ci, self.n, "all", "agreement", "less")
