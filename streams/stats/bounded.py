"""Anytime-valid confidence sequence for the mean of a *bounded* paired difference.

For metrics whose values lie in a known interval (0/1 metrics: ``cand - live`` in ``[-1, 1]``)
the verdict needs a confidence sequence that is valid at every sample size *and* stays finite
and shrinking when the differences have no variance at all (two models that never err).  The
normal-mixture sequence of :mod:`streams.stats.sequential` cannot do that: it scales with the
observed variance, and zero observed variance carries no information about the mean of an
unbounded variable.  For a bounded variable it does, and this module uses the predictable
plug-in empirical-Bernstein confidence sequence of Waudby-Smith & Ramdas (2023, "Estimating
means of bounded random variables by betting", JRSS-B, Theorem 2).

With ``X_i = (d_i - lower) / (upper - lower)`` in ``[0, 1]``, predictable estimates
``mu_{i-1} = (1/2 + sum_{j<i} X_j) / i`` and ``s2_{i-1} = (1/4 + sum_{j<i} (X_j - mu_j)**2) / i``,
bets ``lam_i = min(sqrt(2 log(2/alpha) / (s2_{i-1} i log(1 + i))), c)`` with ``c = 3/4`` and
``psi(lam) = -log(1 - lam) - lam``, the processes

    ``K_n^+(m) = prod_i exp(lam_i (X_i - m) - (X_i - mu_{i-1})**2 psi(lam_i))``

(and ``K_n^-`` with ``m - X_i``) are nonnegative supermartingales under ``E[X_i | past] = m``
with *no* other assumption (no symmetry, no variance), so by Ville's inequality

    ``sum(lam X) / sum(lam)  +-  (log(2/alpha) + sum((X - mu)**2 psi(lam))) / sum(lam)``

covers the mean at every ``n`` simultaneously with probability ``>= 1 - alpha``.  When all
differences are equal the bets sit at ``c`` and the radius is ``log(2/alpha) / (c n)`` in the
``[0, 1]`` scale: e.g. two models that never err are shown within a +0.01 error-rate margin after
about 1,200 requests at ``alpha = 0.025``.  The running intersection of the sequence is
reported (still valid, never widens).
"""

from __future__ import annotations

import math
from typing import Self

import numpy as np
import numpy.typing as npt

from streams.stats._common import NAN
from streams.stats.results import TestResult, reject_nonfinite

__all__ = ["BET_CAP", "BoundedCS", "eb_sequence"]

Arr = npt.NDArray[np.float64]
BET_CAP = 0.75


def eb_sequence(z: npt.NDArray[np.float64], alpha: float) -> tuple[Arr, Arr]:
    """Running-intersection confidence sequence for ``z`` in ``[0, 1]``, vectorised.

    ``z`` has shape ``(runs, n)``; returns the lower and upper bounds after every observation
    (shape ``(runs, n)``, ``[0, 1]`` scale).  :class:`BoundedCS` computes the same one at a time
    (used by the validity bench and its test).
    """
    runs, n = z.shape
    t = np.arange(1, n + 1, dtype=np.float64)
    s = np.cumsum(z, axis=1)
    mu = (0.5 + s) / (t + 1.0)  # mu_t after t observations
    q = np.cumsum((z - mu) ** 2, axis=1)
    zero = np.zeros((runs, 1))
    mu_prev = np.hstack([np.full((runs, 1), 0.5), mu[:, :-1]])
    var_prev = (0.25 + np.hstack([zero, q[:, :-1]])) / t
    la = 2.0 * math.log(2.0 / alpha)
    lam = np.minimum(np.sqrt(la / (var_prev * t * np.log1p(t))), BET_CAP)
    lsum = np.cumsum(lam, axis=1)
    c = np.cumsum(lam * z, axis=1) / lsum
    b = np.cumsum((z - mu_prev) ** 2 * (-np.log1p(-lam) - lam), axis=1)
    r = (0.5 * la + b) / lsum
    lo = np.maximum.accumulate(np.maximum(c - r, 0.0), axis=1)
    hi = np.minimum.accumulate(np.minimum(c + r, 1.0), axis=1)
    return lo, hi


class BoundedCS:
    """Empirical-Bernstein confidence sequence for the mean of ``cand - live`` in known bounds.

    Parameters
    ----------
    lower, upper : float
        Bounds of the difference ``cand - live`` (``-1, 1`` for 0/1 metrics).
    alpha : float
        Level of the two-sided confidence sequence.
    min_samples : int
        Burn-in: the interval is ``(-inf, inf)`` and the e-value 1 until this many pairs.

    Examples
    --------
    >>> cs = BoundedCS(-1.0, 1.0, alpha=0.05, min_samples=100)
    >>> for _ in range(2000):
    ...     _ = cs.update(0.0, 0.0)          # neither model ever errs
    >>> lo, hi = cs.get().ci
    >>> lo < 0.0 < hi < 0.01
    True
    """

    __slots__ = (
        "_a",
        "_b",
        "_hi",
        "_l",
        "_lo",
        "_q",
        "_s",
        "_s1",
        "_sx",
        "alpha",
        "clipped",
        "lower",
        "min_samples",
        "n",
        "upper",
    )

    def __init__(
        self, lower: float, upper: float, alpha: float = 0.05, min_samples: int = 100
    ) -> None:
        if not lower < upper or not (math.isfinite(lower) and math.isfinite(upper)):
            raise ValueError(f"bounds must be finite with lower < upper, got [{lower}, {upper}]")
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        self.lower, self.upper = float(lower), float(upper)
        self.alpha = alpha
        self.min_samples = min_samples
        self.reset()

    def reset(self) -> Self:
        """Forget everything (starts a new sequential experiment)."""
        self.n = self.clipped = 0
        self._s1 = self._sx = 0.0  # sums of d and of live values
        self._s = self._q = 0.0  # sum of X and of (X_i - mu_i)**2
        self._l = self._a = self._b = 0.0  # sum of lam, lam * X, (X - mu_prev)**2 psi(lam)
        self._lo, self._hi = 0.0, 1.0  # running intersection, [0, 1] scale
        return self

    def update(self, x: float, y: float) -> Self:
        """Add the pair (live ``x``, candidate ``y``).

        A difference outside the bounds is clipped into them and counted in ``clipped`` (a
        stream must not stop on one bad value; the guarantee assumes the bounds hold).
        """
        d = y - x
        if d * d - d * d:  # nan unless x, y, their difference and its square are finite
            reject_nonfinite(x, y)
        w = self.upper - self.lower
        z = (d - self.lower) / w
        if not -1e-12 <= z <= 1.0 + 1e-12:
            self.clipped += 1
        z = min(1.0, max(0.0, z))
        t = self.n + 1
        mu_prev = (0.5 + self._s) / t
        var_prev = (0.25 + self._q) / t
        lam = min(
            math.sqrt(2.0 * math.log(2.0 / self.alpha) / (var_prev * t * math.log1p(t))), BET_CAP
        )
        self._l += lam
        self._a += lam * z
        self._b += (z - mu_prev) ** 2 * (-math.log1p(-lam) - lam)
        self._s += z
        self._q += (z - (0.5 + self._s) / (t + 1)) ** 2
        self.n = t
        self._s1 += d
        self._sx += x
        c = self._a / self._l
        r = (math.log(2.0 / self.alpha) + self._b) / self._l
        lo, hi = max(self._lo, c - r), min(self._hi, c + r)
        if lo > hi:  # the running intersection emptied (probability <= alpha): restart it
            lo, hi = max(0.0, c - r), min(1.0, c + r)
        self._lo, self._hi = lo, hi
        return self

    @property
    def mean(self) -> float:
        """Mean difference ``cand - live``."""
        return self._s1 / self.n if self.n else NAN

    @property
    def live_mean(self) -> float:
        """Mean of the live values."""
        return self._sx / self.n if self.n else NAN

    def confidence_sequence(self) -> tuple[float, float]:
        """Two-sided (1 - alpha) confidence sequence for the mean difference."""
        if self.n < max(1, self.min_samples):
            return (-math.inf, math.inf)
        w = self.upper - self.lower
        return (self.lower + w * self._lo, self.lower + w * self._hi)

    def log_e(self, null: float = 0.0) -> float:
        """Log of the two-sided e-value against ``mean == null`` (0 during burn-in)."""
        if self.n < max(1, self.min_samples):
            return 0.0
        m = (null - self.lower) / (self.upper - self.lower)
        g = self._a - m * self._l
        hi, lo = g - self._b, -g - self._b
        top = max(hi, lo)
        return top + math.log(0.5 * (math.exp(hi - top) + math.exp(lo - top)))

    def get(self) -> TestResult:
        """e-value against no difference, its p-value, the mean difference and the CS."""
        le = self.log_e()
        e = math.exp(min(le, 700.0))
        p = min(1.0, math.exp(-le))
        return TestResult(
            "bounded_cs",
            e,
            p,
            self.mean,
            self.confidence_sequence(),
            self.n,
            "cumulative",
            "mean_diff",
            "two-sided",
            e,
            self.live_mean,
            self.live_mean + self.mean,
        )
