"""Wilcoxon signed-rank test on per-request differences ``d = candidate - live``.

* :class:`Wilcoxon` -- signed-rank test (``scipy.stats.wilcoxon(cand, live)``), O(log n) update:
  the absolute differences are kept sorted, so ranks are read, not recomputed.
* :func:`tie_term` -- the tie correction ``sum(t**3 - t)`` of a sorted sample.

``alternative="greater"`` means the candidate's values are larger than live's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Self

import numpy as np
import numpy.typing as npt

from streams.stats._common import NAN, interval, p_from_z, z_quantile
from streams.stats._sorted import SortedList
from streams.stats.results import TestResult, check_alternative, check_finite_many, reject_nonfinite

__all__ = ["Wilcoxon", "tie_term"]


@lru_cache(maxsize=64)
def _signed_rank_pmf(n: int) -> npt.NDArray[np.float64]:
    """Exact null pmf of the signed-rank sum R+ for ``n`` untied non-zero differences."""
    top = n * (n + 1) // 2
    counts = np.zeros(top + 1)
    counts[0] = 1.0
    for k in range(1, n + 1):
        counts[k:] = counts[k:] + counts[: top + 1 - k].copy()
    out: npt.NDArray[np.float64] = counts / 2.0**n
    return out


def _midranks(a: npt.NDArray[np.float64], v: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    lo = np.searchsorted(a, v, "left")
    hi = np.searchsorted(a, v, "right")
    out: npt.NDArray[np.float64] = (lo + hi + 1) / 2.0
    return out


def tie_term(a: npt.NDArray[np.float64]) -> float:
    """``sum(t**3 - t)`` over runs of equal values in the sorted array ``a``."""
    if a.size < 2:
        return 0.0
    edges = np.flatnonzero(np.diff(a)) + 1
    t = np.diff(np.concatenate(([0], edges, [a.size]))).astype(np.float64)
    return float(np.sum(t**3 - t))


def _signed(xs: Sequence[float], ys: Sequence[float]) -> tuple[int, list[float], list[float]]:
    """Of the differences ``y - x`` (as :meth:`Wilcoxon.update` computes them): how many are
    zero, the absolute values of the others and the positive ones, in order."""
    d = np.array([y - x for x, y in zip(xs, ys, strict=True)], dtype=np.float64)
    nonzero = d[d != 0.0]
    absolute = np.where(nonzero > 0.0, nonzero, -nonzero)
    return d.size - nonzero.size, absolute.tolist(), nonzero[nonzero > 0.0].tolist()


class Wilcoxon:
    """Wilcoxon signed-rank test on ``cand - live`` (zeros dropped, ``zero_method="wilcox"``).

    Exact null distribution when there are at most ``exact_max`` differences and no ties or zeros
    (as scipy's ``method="auto"``); normal approximation with tie correction otherwise (scipy
    ``method="asymptotic"``; scipy's auto mode would run a permutation test for n <= 13 with
    ties). ``effect`` is the matched-pairs rank-biserial correlation ``(R+ - R-) / (R+ + R-)``
    with a normal-approximation interval.

    Examples
    --------
    >>> w = Wilcoxon()
    >>> for live, cand in [(1.0, 1.4), (2.0, 2.1), (3.0, 3.7), (2.0, 2.2), (5.0, 4.9)]:
    ...     _ = w.update(live, cand)
    >>> w.get().statistic, round(w.get().pvalue, 4)
    (1.0, 0.125)
    """

    __slots__ = ("_abs", "_pos", "alternative", "confidence", "exact_max", "n", "n_zero")

    def __init__(
        self, alternative: str = "two-sided", confidence: float = 0.95, exact_max: int = 50
    ) -> None:
        self.alternative = check_alternative(alternative)
        self.confidence = confidence
        self.exact_max = exact_max
        self._abs = SortedList()
        self._pos = SortedList()
        self.reset()

    def reset(self) -> Self:
        """Forget everything."""
        self.n = 0
        self.n_zero = 0
        self._abs.clear()
        self._pos.clear()
        return self

    def update(self, x: float, y: float) -> Self:
        """Add the pair (live ``x``, candidate ``y``)."""
        d = y - x
        if d * d - d * d:  # nan unless x, y, their difference and its square are finite
            reject_nonfinite(x, y)
        self.n += 1
        if d == 0.0:
            self.n_zero += 1
        elif d > 0.0:
            self._abs.add(d)
            self._pos.add(d)
        else:
            self._abs.add(-d)
        return self

    def revert(self, x: float, y: float) -> Self:
        """Remove a pair added earlier."""
        d = y - x
        self.n -= 1
        if d == 0.0:
            self.n_zero -= 1
        elif d > 0.0:
            self._abs.remove(d)
            self._pos.remove(d)
        else:
            self._abs.remove(-d)
        return self

    def update_many(self, xs: Sequence[float], ys: Sequence[float]) -> Self:
        """Add the pairs ``zip(xs, ys)`` (as many :meth:`update` calls)."""
        check_finite_many(xs, ys)
        zeros, absolute, positive = _signed(xs, ys)
        self.n += len(xs)
        self.n_zero += zeros
        self._abs.add_many(absolute)
        self._pos.add_many(positive)
        return self

    def revert_many(self, xs: Sequence[float], ys: Sequence[float]) -> Self:
        """Remove pairs added earlier (as many :meth:`revert` calls)."""
        zeros, absolute, positive = _signed(xs, ys)
        self.n -= len(xs)
        self.n_zero -= zeros
        self._abs.remove_many(absolute)
        self._pos.remove_many(positive)
        return self

    def merge(self, other: Wilcoxon) -> Self:
        """Fold another partial state in."""
        self.n += other.n
        self.n_zero += other.n_zero
        self._abs.update(other._abs)
        self._pos.update(other._pos)
        return self

    def get(self) -> TestResult:
        """Signed-rank statistic (min(R+, R-) two-sided, R+ one-sided), p-value, rank-biserial."""
        alt = self.alternative
        a = self._abs.to_array()
        m = a.size
        if m == 0:
            return TestResult(
                "wilcoxon", NAN, NAN, NAN, (NAN, NAN), self.n, "all", "rank_biserial", alt
            )
        r_plus = float(np.sum(_midranks(a, self._pos.to_array())))
        total = m * (m + 1) / 2.0
        r_minus = total - r_plus
        ties = tie_term(a)
        se = math.sqrt((m * (m + 1) * (2 * m + 1) - ties / 2.0) / 24.0)
        if ties == 0.0 and self.n_zero == 0 and self.n <= self.exact_max:
            pmf = _signed_rank_pmf(m)
            k = round(r_plus)
            cdf, sf = float(pmf[: k + 1].sum()), float(pmf[k:].sum())
            p = {"less": cdf, "greater": sf}.get(alt, min(1.0, 2.0 * min(cdf, sf)))
        else:
            p = p_from_z((r_plus - total / 2.0) / se, alt)
        stat = min(r_plus, r_minus) if alt == "two-sided" else r_plus
        effect = (r_plus - r_minus) / total
        half = z_quantile(self.confidence, alt) * 2.0 * se / total
        lo, hi = interval(effect, half, half, alt)
        ci = (max(-1.0, lo), min(1.0, hi))
        return TestResult("wilcoxon", stat, p, effect, ci, self.n, "all", "rank_biserial", alt)
