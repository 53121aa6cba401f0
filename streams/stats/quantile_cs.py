"""Anytime-valid comparison of quantiles (e.g. p50 and p99 latency) by confidence sequences.

The recommended default for latency: what operators care about is a p99 regression, and a
quantile, unlike a mean, can be bounded without any assumption on the tails.  Following Howard
& Ramdas ("Sequential estimation of quantiles with applications to A/B-testing and best-arm
identification", Bernoulli 2022), for i.i.d. values with a continuous distribution the counts
``K_t = #{i <= t : X_i <= q_p}`` below the true ``p``-quantile are a Binomial(t, p) process, so
the conjugate beta-binomial mixture of likelihood ratios

    ``E_t(K) = B(a + K, b + t - K) / B(a, b) / (p**K (1 - p)**(t - K))``,  ``a = p m, b = (1-p) m``

is a nonnegative martingale with mean 1 and, by Ville's inequality, ``{K : E_t(K) < 1/alpha}``
holds for ``K_t`` at every ``t`` with probability ``>= 1 - alpha``.  That set is an interval
``[k_lo, k_hi]`` (``log E`` is convex in ``K``), so the ``p``-quantile lies between the order
statistics ``X_(k_lo)`` and ``X_(k_hi + 1)`` at every ``t`` simultaneously.  The ratio of the
candidate's to live's quantile is bracketed by combining the two sequences at ``alpha / 2`` each
(a union bound: no assumption on how the paired values depend on each other).

Assumption: i.i.d. values from a continuous distribution (ties at the quantile only make the
sequence conservative on one side).  No moment is needed: Pareto 1.5 latency is fine.  The
prior size ``m`` makes the sequence tightest near ``tune_n`` values (as the normal mixture's
``rho``).

Memory: by default (``resolution=1e-3``) each side keeps counts per logarithmic bin of relative
width ``resolution`` (bin ``j`` holds the values in ``(g**(j-1), g**j]``, ``g = 1 +
resolution``; one bin for values <= 0, ``[smallest seen, 0]``), as a DDSketch does: memory is
bounded by the range of the values, not their number (~7,000 bins per side for values from
1e-3 to 1e3, ms, at 0.1%), and an order statistic is known to lie within its bin.  The interval
reported is then widened to the bin edges around the two order statistics, so it contains the
exact interval and keeps its coverage; the cost is at most a factor ``1 + resolution`` on each
bound.  ``resolution=None`` keeps every value (two sorted arrays, memory grows with the
experiment) and reports the exact order statistics.
"""

from __future__ import annotations

import math
from typing import Self, TypeVar

import numpy as np
import numpy.typing as npt
from scipy import special

from streams.stats._common import NAN
from streams.stats._sorted import SortedList
from streams.stats.results import TestResult, check_alternative, reject_nonfinite

__all__ = ["QuantileCS", "order_bounds"]

DEFAULT_RESOLUTION = 1e-3


class _Binned:
    """Counts of values per logarithmic bin (a multiset with bounded memory)."""

    __slots__ = ("counts", "log_g", "n", "nonpos_min")

    def __init__(self, resolution: float) -> None:
        self.log_g = math.log1p(resolution)
        self.clear()

    def clear(self) -> None:
        self.counts: dict[int | None, int] = {}  # None: the values <= 0
        self.n = 0
        self.nonpos_min = 0.0

    def __len__(self) -> int:
        return self.n

    def _bin(self, x: float) -> int | None:
        return math.ceil(math.log(x) / self.log_g) if x > 0.0 else None

    def add(self, x: float) -> None:
        b = self._bin(x)
        self.counts[b] = self.counts.get(b, 0) + 1
        self.n += 1
        if b is None:
            self.nonpos_min = min(self.nonpos_min, x)

    def remove(self, x: float) -> None:
        b = self._bin(x)
        left = self.counts.get(b, 0) - 1
        if left < 0:
            raise ValueError(f"{x!r} is not held")
        if left:
            self.counts[b] = left
        else:
            del self.counts[b]
        self.n -= 1

    def update(self, other: _Binned) -> None:
        for b, c in other.counts.items():
            self.counts[b] = self.counts.get(b, 0) + c
        self.n += other.n
        self.nonpos_min = min(self.nonpos_min, other.nonpos_min)

    def edges(self, k: int) -> tuple[float, float]:
        """Bounds of the ``k``-th smallest value (0-based): the edges of its bin."""
        seen = self.counts.get(None, 0)
        if k < seen:
            return self.nonpos_min, 0.0
        for b in sorted(j for j in self.counts if j is not None):
            seen += self.counts[b]
            if k < seen:
                return math.exp((b - 1) * self.log_g), math.exp(b * self.log_g)
        raise IndexError(k)


Store = SortedList | _Binned


def _edges(s: Store, k: int) -> tuple[float, float]:
    if isinstance(s, SortedList):
        v = s[k]
        return v, v
    return s.edges(k)


A = TypeVar("A", int, npt.NDArray[np.int64])


def _prior(p: float, alpha: float, tune_n: float) -> tuple[float, float]:
    la = 2.0 * math.log(1.0 / alpha)
    m = max(tune_n / (la + math.log1p(la)), 2.0 / min(p, 1.0 - p))
    return p * m, (1.0 - p) * m


Arr = npt.NDArray[np.float64]


def _log_e(k: Arr, t: Arr, p: float, a: float, b: float) -> Arr:
    """Log of the beta-binomial mixture e-value for ``k`` of ``t`` values below the quantile."""
    out: Arr = (
        special.betaln(a + k, b + t - k)
        - special.betaln(a, b)
        - k * math.log(p)
        - (t - k) * math.log1p(-p)
    )
    return out


def order_bounds(t: A, p: float, alpha: float, tune_n: float = 2000.0) -> tuple[A, A]:
    """``(k_lo, k_hi)``: the counts below the ``p``-quantile the sequence accepts after ``t``
    values (elementwise on arrays).  The quantile lies in ``[X_(k_lo), X_(k_hi + 1)]`` (1-based
    order statistics; ``k_lo = 0`` means no lower bound, ``k_hi = t`` no upper bound)."""
    a, b = _prior(p, alpha, tune_n)
    tt = np.asarray(t, dtype=np.float64)
    bar = math.log(1.0 / alpha)
    mid = np.clip(np.floor(tt * p + 0.5), 0, tt)  # near the minimum of the convex log E
    lo, hi = np.zeros_like(tt), mid.copy()  # the left edge is in (lo, hi]; log E(hi) < bar
    for _ in range(64):
        if not np.any(hi - lo > 1):
            break
        m = np.floor((lo + hi) / 2.0)
        ok = _log_e(m, tt, p, a, b) < bar
        hi, lo = np.where(ok, m, hi), np.where(ok, lo, m)
    k_lo = np.where(_log_e(lo, tt, p, a, b) < bar, lo, hi)
    lo2, hi2 = mid.copy(), tt.copy()  # the right edge is in [lo2, hi2)
    for _ in range(64):
        if not np.any(hi2 - lo2 > 1):
            break
        m = np.floor((lo2 + hi2) / 2.0)
        ok = _log_e(m, tt, p, a, b) < bar
        lo2, hi2 = np.where(ok, m, lo2), np.where(ok, hi2, m)
    k_hi = np.where(_log_e(hi2, tt, p, a, b) < bar, hi2, lo2)
    if isinstance(t, int):
        return int(k_lo), int(k_hi)
    return k_lo.astype(np.int64), k_hi.astype(np.int64)


def _point(s: Store, k: int) -> float:
    """The ``k``-th smallest value, or the geometric middle of its bin."""
    lo, hi = _edges(s, k)
    return lo if lo == hi else math.sqrt(lo * hi) if lo > 0.0 else hi


def _bracket(s: Store, p: float, alpha: float, tune_n: float) -> tuple[float, float]:
    n = len(s)
    k_lo, k_hi = order_bounds(n, p, alpha, tune_n)
    lo = _edges(s, k_lo - 1)[0] if k_lo >= 1 else -math.inf
    hi = _edges(s, k_hi)[1] if k_hi < n else math.inf
    return lo, hi


class QuantileCS:
    """Anytime-valid confidence sequence for the ratio of candidate to live ``q``-quantile.

    ``effect`` is the ratio of the empirical quantiles, ``ci`` the anytime-valid interval of
    the true ratio (``alpha / 2`` per side's quantile); ``pvalue`` is ``0`` when the interval
    excludes 1 (and 1 otherwise), and a rule judges the interval against ``1 + min_effect``.
    For positive values (latency).

    Examples
    --------
    >>> import random
    >>> rng = random.Random(3)
    >>> t = QuantileCS(0.99, alternative="greater", min_samples=100)
    >>> for _ in range(20000):
    ...     _ = t.update(rng.expovariate(1.0), 1.5 * rng.expovariate(1.0))  # p99 x1.5
    >>> lo, hi = t.get().ci
    >>> 1.0 < lo < 1.5 < hi
    True
    """

    __slots__ = (
        "_cand",
        "_live",
        "alpha",
        "alternative",
        "min_samples",
        "q",
        "resolution",
        "tune_n",
    )

    def __init__(
        self,
        q: float = 0.99,
        alternative: str = "two-sided",
        alpha: float = 0.05,
        min_samples: int = 100,
        tune_n: float = 2000.0,
        resolution: float | None = DEFAULT_RESOLUTION,
    ) -> None:
        if not 0.0 < q < 1.0:
            raise ValueError(f"quantile must be in (0, 1), got {q}")
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        self.q = q
        self.alternative = check_alternative(alternative)
        self.alpha = alpha
        self.min_samples = min_samples
        self.tune_n = tune_n
        if resolution is not None and not 0.0 < resolution < 1.0:
            raise ValueError(f"resolution must be in (0, 1) or None, got {resolution}")
        self.resolution = resolution
        self._live: Store = SortedList() if resolution is None else _Binned(resolution)
        self._cand: Store = SortedList() if resolution is None else _Binned(resolution)

    @property
    def n(self) -> int:
        """Pairs seen."""
        return len(self._live)

    def reset(self) -> Self:
        """Forget everything."""
        self._live.clear()
        self._cand.clear()
        return self

    def update(self, x: float, y: float) -> Self:
        """Add live value ``x`` and candidate value ``y``."""
        d = y - x
        if d * d - d * d:  # nan unless x, y, their difference and its square are finite
            reject_nonfinite(x, y)
        self._live.add(x)
        self._cand.add(y)
        return self

    def revert(self, x: float, y: float) -> Self:
        """Remove values (a sliding window voids the anytime guarantee)."""
        self._live.remove(x)
        self._cand.remove(y)
        return self

    def merge(self, other: QuantileCS) -> Self:
        """Fold another partial state in."""
        self._live.update(other._live)  # type: ignore[arg-type]  # same resolution
        self._cand.update(other._cand)  # type: ignore[arg-type]
        return self

    def bounds(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """Anytime-valid intervals of live's and the candidate's quantile (alpha/2 each)."""
        if self.n < max(1, self.min_samples):
            inf = (-math.inf, math.inf)
            return inf, inf
        a = self.alpha / 2.0
        return (
            _bracket(self._live, self.q, a, self.tune_n),
            _bracket(self._cand, self.q, a, self.tune_n),
        )

    def get(self) -> TestResult:
        """Ratio of the empirical quantiles and the anytime-valid interval of the ratio."""
        name = f"p{round(self.q * 100):d}_ratio"
        n, alt = self.n, self.alternative
        if n == 0:
            return TestResult("quantile_cs", NAN, NAN, NAN, (NAN, NAN), 0, "cumulative", name, alt)
        live, cand = self._live, self._cand
        k = min(n - 1, max(0, math.ceil(self.q * n) - 1))
        ql, qc = _point(live, k), _point(cand, k)
        ratio = qc / ql if ql > 0 else (NAN if qc == 0 else math.inf)
        (l_lo, l_hi), (c_lo, c_hi) = self.bounds()
        lo = c_lo / l_hi if l_hi > 0 and c_lo > 0 else 0.0
        hi = c_hi / l_lo if l_lo > 0 else math.inf
        excluded = {"greater": lo > 1.0, "less": hi < 1.0}.get(alt, lo > 1.0 or hi < 1.0)
        p = 0.0 if excluded else 1.0
        return TestResult("quantile_cs", ratio, p, ratio, (lo, hi), n, "cumulative", name, alt)
