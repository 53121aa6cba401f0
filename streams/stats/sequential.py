"""Anytime-valid test for symmetric paired differences: normal-mixture SPRT / confidence sequence.

For ``d_i = cand_i - live_i`` and a null mean ``mu0`` the test keeps ``S_n = sum(d_i - mu0)``
and the self-normalising variance process ``V_n = sum((d_i - mu0)**2)``.  For every fixed
``theta`` the process ``exp(theta * S_n - theta**2 * V_n / 2)`` is a nonnegative supermartingale
whenever the ``d_i - mu0`` are conditionally symmetric (de la Pena 1999; Howard et al. 2021,
"Time-uniform Chernoff bounds", case "conditionally symmetric") -- which is exactly the A/A
situation where live and candidate are exchangeable, including 0/1 correctness, rare errors
and heavy-tailed latency (for 0/1 metrics equal rates already imply symmetric differences,
since then P(d = 1) = P(d = -1)).  Mixing ``theta`` over a (half-)normal with precision
``rho`` gives the closed-form e-process

* one-sided: ``E_n = 2 Phi(S_n / sqrt(V_n + rho)) exp(S_n**2 / (2 (V_n + rho)))
  sqrt(rho / (V_n + rho))``
* two-sided: ``E_n = exp(S_n**2 / (2 (V_n + rho))) sqrt(rho / (V_n + rho))``

and by Ville's inequality ``P(sup_n E_n >= 1/alpha) <= alpha``: ``p_n = min(1, 1/E_n)`` is an
always-valid p-value, so alerts may be checked after every event.

Assumption: conditionally symmetric differences under the null.  That is why it is the default
only for 0/1 metrics (symmetric when the rates are equal, null 0) and for metrics declared
``symmetric``.  It is **not** a valid test of a mean: when live and candidate have the same mean
but different shapes (a Pareto latency against a lognormal one, 1% +99 / 99% -1) it alerted in
36-53% of A/A runs at alpha 0.05 (issue 16).  Unbounded metrics use
:class:`~streams.stats.asymptotic.AsymptoticCS` by default.  The burn-in ``min_samples`` keeps
early decisions off.  The mixing precision ``rho`` is tuned to be tightest
around ``tune_n`` observations, using the scale ``V / n`` seen at the end of the burn-in (a
function of the magnitudes only, so validity under symmetry is kept).  The reported ``ci`` is the
matching two-sided normal-mixture confidence sequence with plug-in variance (asymptotic).
"""

from __future__ import annotations

import math
from typing import ClassVar, Protocol, Self, TypeVar

import numpy as np
import numpy.typing as npt
from scipy import special

from streams.stats._common import NAN
from streams.stats.results import TestResult, check_alternative, reject_nonfinite

__all__ = ["MixtureSPRT", "e_process_result", "log_evalue", "mixture_rho"]

A = TypeVar("A", float, npt.NDArray[np.float64])


def mixture_rho(scale: A, alpha: float, tune_n: float) -> A:
    """Mixing precision that makes the boundary tightest near ``tune_n`` observations.

    Howard et al. (2021), eq. (3.11): ``rho = m / (2 log(1/alpha) + log(1 + 2 log(1/alpha)))``
    with intrinsic time ``m = tune_n * scale``.
    """
    la = 2.0 * math.log(1.0 / alpha)
    return scale * (tune_n / (la + math.log1p(la)))


def log_evalue(s: A, v: A, rho: A, two_sided: bool) -> A:
    """Log e-value of the normal mixture for sum ``s`` and variance process ``v``.

    Works elementwise on numpy arrays (used by the vectorised validity bench) and on floats.
    """
    a = np.asarray(v) + rho
    base = np.asarray(s) ** 2 / (2.0 * a) + 0.5 * np.log(rho / a)
    if not two_sided:
        base = base + math.log(2.0) + special.log_ndtr(np.asarray(s) / np.sqrt(a))
    if isinstance(s, float):
        return float(base)
    return base


class _Sums:
    """The state of a :class:`MixtureSPRT`: sums over the pairs seen, and the scale of the
    differences at the end of the burn-in (0 before)."""

    __slots__ = ("burn", "n", "s1", "s2", "scale", "sx")

    def __init__(self, burn: int) -> None:
        self.burn = burn
        self.clear()

    def clear(self) -> None:
        self.n = 0
        self.s1 = self.s2 = self.sx = self.scale = 0.0  # sums of d, d**2 and live values


class MixtureSPRT:
    """Anytime-valid test and confidence sequence for the mean of ``cand - live``.

    Parameters
    ----------
    alternative : str
        ``"greater"`` (candidate's values larger), ``"less"`` or ``"two-sided"``.
    null : float
        ``mu0``: e.g. ``alternative="greater", null=0.01`` tests ``H0: mean <= 0.01``.
    alpha : float
        Level the mixture is tuned for and of the confidence sequence.
    min_samples : int
        Burn-in: the e-value is 1 until this many pairs (and a non-zero difference) were seen.
    tune_n : float
        Sample size around which the boundary is tightest.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(1)
    >>> t = MixtureSPRT(alternative="greater", min_samples=50)
    >>> for _ in range(2000):
    ...     live = rng.gauss(0.0, 1.0)
    ...     _ = t.update(live, live + rng.gauss(0.2, 1.0))
    >>> r = t.get()
    >>> r.pvalue < 0.05, r.ci[0] < 0.2 < r.ci[1]
    (True, True)
    """

    __slots__ = ("_sums", "alpha", "alternative", "min_samples", "null", "tune_n")
    shared_state: ClassVar[tuple[str, ...]] = ("_sums",)  # see windows.share_state

    def __init__(
        self,
        alternative: str = "two-sided",
        null: float = 0.0,
        alpha: float = 0.05,
        min_samples: int = 100,
        tune_n: float = 2000.0,
    ) -> None:
        self.alternative = check_alternative(alternative)
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        self.null = null
        self.alpha = alpha
        self.min_samples = min_samples
        self.tune_n = tune_n
        self._sums = _Sums(max(1, min_samples))

    @property
    def share_key(self) -> int:
        """Tests fed the same pairs hold the same sums when their burn-in is as long."""
        return self._sums.burn

    @property
    def n(self) -> int:
        """Pairs seen."""
        return self._sums.n

    def reset(self) -> Self:
        """Forget everything (starts a new sequential experiment)."""
        self._sums.clear()
        return self

    def update(self, x: float, y: float) -> Self:
        """Add the pair (live ``x``, candidate ``y``)."""
        s = self._sums
        d = y - x
        q = d * d
        if q - q:  # nan unless d and d**2 are finite
            reject_nonfinite(x, y)
        n = s.n + 1
        s.n = n
        s.s1 += d
        s.s2 += q
        s.sx += x
        if s.scale == 0.0 and n >= s.burn:
            s.scale = s.s2 / n
        return self

    def revert(self, x: float, y: float) -> Self:
        """Remove a pair (sliding windows void the anytime guarantee; use cumulative state)."""
        s = self._sums
        d = y - x
        s.n -= 1
        s.s1 -= d
        s.s2 -= d * d
        s.sx -= x
        return self

    def merge(self, other: MixtureSPRT) -> Self:
        """Fold another partial state in (sums add; the first known burn-in scale is kept)."""
        s, o = self._sums, other._sums
        s.n += o.n
        s.s1 += o.s1
        s.s2 += o.s2
        s.sx += o.sx
        if s.scale == 0.0:
            s.scale = o.scale
        if s.scale == 0.0 and s.n >= s.burn:
            s.scale = s.s2 / s.n
        return self

    @property
    def mean(self) -> float:
        """Mean difference ``cand - live``."""
        s = self._sums
        return s.s1 / s.n if s.n else NAN

    @property
    def live_mean(self) -> float:
        """Mean of the live values."""
        s = self._sums
        return s.sx / s.n if s.n else NAN

    @property
    def sd(self) -> float:
        """Standard deviation of the differences."""
        s = self._sums
        if s.n < 2:
            return NAN
        return math.sqrt(max(0.0, s.s2 - s.s1 * s.s1 / s.n) / (s.n - 1))

    def log_e(self) -> float:
        """Current log e-value against the null (0 during burn-in)."""
        sums, mu0 = self._sums, self.null
        n = sums.n
        if n < self.min_samples or sums.scale == 0.0:
            return 0.0
        s = sums.s1 - n * mu0
        v = sums.s2 - 2.0 * mu0 * sums.s1 + n * mu0 * mu0
        if self.alternative == "less":
            s = -s
        rho = mixture_rho(sums.scale, self.alpha, self.tune_n)
        return log_evalue(s, v, rho, self.alternative == "two-sided")

    def confidence_sequence(self) -> tuple[float, float]:
        """Normal-mixture confidence sequence for the mean difference.

        Two-sided (1 - alpha) for a two-sided test. For a one-sided test each bound is a
        one-sided (1 - alpha) bound (the two-sided sequence at 2 * alpha), so the bound
        that matters agrees with the one-sided test an alert reports it beside.
        """
        s = self._sums
        n = s.n
        if n < max(2, self.min_samples) or s.scale == 0.0:
            return (-math.inf, math.inf)
        mean = s.s1 / n
        vhat = max(0.0, s.s2 - s.s1 * mean)
        rho = mixture_rho(s.scale, self.alpha, self.tune_n)
        a = vhat + rho
        level = self.alpha if self.alternative == "two-sided" else min(2.0 * self.alpha, 0.5)
        half = math.sqrt(a * (math.log(a / rho) + 2.0 * math.log(1.0 / level))) / n
        return (mean - half, mean + half)

    def get(self) -> TestResult:
        """e-value (``statistic`` and ``evalue``), always-valid p-value, mean and CS."""
        return e_process_result(self, "msprt")


class _EProcess(Protocol):
    """What :func:`e_process_result` reads of a sequential test on a mean difference."""

    @property
    def mean(self) -> float: ...

    @property
    def n(self) -> int: ...

    @property
    def live_mean(self) -> float: ...

    @property
    def alternative(self) -> str: ...

    def log_e(self) -> float: ...

    def confidence_sequence(self) -> tuple[float, float]: ...


def e_process_result(test: _EProcess, name: str) -> TestResult:
    """The result of a sequential mean test: its e-value (``statistic`` and ``evalue``),
    the always-valid p-value ``min(1, 1/e)``, the mean and the confidence sequence."""
    le = test.log_e()
    e = math.exp(min(le, 700.0))
    p = min(1.0, math.exp(-le)) if le > -700.0 else 1.0
    mean, cs, n, live = test.mean, test.confidence_sequence(), test.n, test.live_mean
    return TestResult(
        name, e, p, mean, cs, n, "cumulative", "mean_diff", test.alternative, e, live, live + mean
    )
