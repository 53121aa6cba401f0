"""Verdicts before the labels arrive: prediction-powered (regression-adjusted) mean difference.

Labels are late; predictions are not.  Every paired request ``i`` has a *proxy* ``f_i`` of its
loss difference computed without the label (e.g. the expected log-loss difference of the two
models under their averaged probabilities); a subset of ``n`` of the ``N`` paired requests
also has its true difference ``d_i``.  The estimator

    ``theta = mean_labelled(d) - lam * (mean_labelled(f) - mean_all(f))``,
    ``lam = Cov_labelled(d, f) / Var_labelled(f)``,

is prediction-powered inference for a mean with its power-tuning parameter (Angelopoulos,
Bates, Fannjiang, Jordan, Zrnic, "Prediction-powered inference", Science 2023; Angelopoulos,
Duchi, Zrnic, "PPI++", 2023), written for a labelled set that is a subset of the requests; it is
also the shadow-mode analogue of CUPED's regression adjustment, the covariate being the proxy.
Its variance is ``rho**2 s_d**2 / N + (1 - rho**2) s_d**2 / n`` (``rho`` the correlation of
``d`` and ``f``): with 20% of the requests labelled and ``rho = 0.8`` it needs ~0.5x the
labelled requests of the labels-only mean.

Validity argument: ``E[theta] = E[d]`` whatever the proxy (a bad proxy only costs width) as long
as *which* requests are labelled is independent of their ``(d, f)`` (labels missing at random,
e.g. labelled later by a delay that does not depend on the outcome, and a stationary stream).
The proxy may use the inputs and both predictions; it must not use the label.  The interval is
the CLT one, so it is valid at **fixed looks**: to watch it, use the documented schedule of
``looks`` planned looks, each at ``alpha / looks`` (Bonferroni, so the family of looks holds
``alpha``); no anytime-valid version is implemented.  Results are labelled ``estimated``
(``window="estimated"``) while labels are partial.
"""

from __future__ import annotations

import math
from typing import Self

from streams.stats._common import NAN, p_from_z, z_quantile
from streams.stats.results import TestResult, check_alternative, reject_nonfinite

__all__ = ["PredictionPowered"]


class _Moments:
    """Running means and co-moments of up to two variables (Welford)."""

    __slots__ = ("cxy", "mx", "my", "n", "sxx", "syy")

    def __init__(self) -> None:
        self.n = 0
        self.mx = self.my = self.sxx = self.syy = self.cxy = 0.0

    def add(self, x: float, y: float = 0.0) -> None:
        self.n += 1
        dx, dy = x - self.mx, y - self.my
        self.mx += dx / self.n
        self.my += dy / self.n
        self.sxx += dx * (x - self.mx)
        self.syy += dy * (y - self.my)
        self.cxy += dx * (y - self.my)


class PredictionPowered:
    """Prediction-powered estimate and CLT interval of the mean difference ``cand - live``.

    Feed :meth:`update_proxy` once per paired request (the proxies of both models' losses)
    and :meth:`update` once per labelled request (its true losses and the same proxies).

    Parameters
    ----------
    alternative : str
        ``"greater"``, ``"less"`` or ``"two-sided"``.
    alpha : float
        Family level of the look schedule.
    looks : int
        Planned looks; each is judged at ``alpha / looks``.
    min_labelled : int
        No result before this many labelled requests.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(5)
    >>> t = PredictionPowered(alpha=0.05, looks=1)
    >>> for i in range(5000):
    ...     f = rng.gauss(0.1, 1.0)                  # proxy of the loss difference
    ...     _ = t.update_proxy(0.0, f)
    ...     if i % 5 == 0:                            # one request in five is labelled
    ...         _ = t.update(0.0, f + rng.gauss(0.0, 0.5), 0.0, f)
    >>> r = t.get()
    >>> r.window, r.ci[0] < 0.1 < r.ci[1], round(r.ci[1] - r.ci[0], 2)
    ('estimated', True, 0.08)
    """

    __slots__ = ("_all", "_lab", "alpha", "alternative", "looks", "min_labelled")

    def __init__(
        self,
        alternative: str = "two-sided",
        alpha: float = 0.05,
        looks: int = 20,
        min_labelled: int = 100,
    ) -> None:
        self.alternative = check_alternative(alternative)
        if not 0.0 < alpha < 1.0 or looks < 1:
            raise ValueError(f"need 0 < alpha < 1 and looks >= 1, got {alpha}, {looks}")
        self.alpha, self.looks, self.min_labelled = alpha, looks, min_labelled
        self.reset()

    def reset(self) -> Self:
        """Forget everything."""
        self._all = _Moments()  # proxies of every paired request
        self._lab = _Moments()  # (d, f) of the labelled ones
        return self

    @property
    def n(self) -> int:
        """Labelled requests."""
        return self._lab.n

    @property
    def n_paired(self) -> int:
        """Paired requests (with a proxy)."""
        return self._all.n

    def update_proxy(self, f_live: float, f_cand: float) -> Self:
        """Add one paired request's proxies of the two losses (no label needed)."""
        f = f_cand - f_live
        if f * f - f * f:
            reject_nonfinite(f_live, f_cand)
        self._all.add(f)
        return self

    def update(self, x: float, y: float, f_live: float, f_cand: float) -> Self:
        """Add one labelled request: true losses (live ``x``, candidate ``y``) and its proxies
        (the same as given to :meth:`update_proxy` for it)."""
        d, f = y - x, f_cand - f_live
        if d * d - d * d or f * f - f * f:
            reject_nonfinite(x, y)
        self._lab.add(d, f)
        return self

    def estimate(self) -> tuple[float, float, float]:
        """``(theta, its standard error, lam)``."""
        lab, all_ = self._lab, self._all
        n, big_n = lab.n, all_.n
        if n < 2 or big_n < 2:
            return (NAN, NAN, NAN)
        lam = lab.cxy / lab.syy if lab.syy > 0.0 else 0.0  # Cov(d, f) / Var(f), labelled
        theta = lab.mx - lam * (lab.my - all_.mx)
        resid = (lab.sxx - 2.0 * lam * lab.cxy + lam * lam * lab.syy) / (n - 1)  # Var(d - lam f)
        var = max(resid, 0.0) / n + lam * lam * (all_.sxx / (big_n - 1)) / big_n
        return (theta, math.sqrt(var), lam)

    def get(self, alpha: float | None = None) -> TestResult:
        """z statistic, p-value at one look (compare with ``alpha / looks``), estimate and the
        interval at the per-look level ``1 - alpha / looks`` (``alpha``: the family level of
        the look schedule, default the instance's)."""
        alt = self.alternative
        alpha = self.alpha if alpha is None else alpha
        theta, se, _lam = self.estimate()
        if self.n < max(2, self.min_labelled) or not se > 0.0:
            return TestResult(
                "ppi", NAN, NAN, theta, (-math.inf, math.inf), self.n, "estimated", alternative=alt
            )
        z = theta / se
        half = z_quantile(1.0 - alpha / self.looks, alt) * se
        lo = -math.inf if alt == "less" else theta - half
        hi = math.inf if alt == "greater" else theta + half
        p = p_from_z(z, alt)
        return TestResult("ppi", z, p, theta, (lo, hi), self.n, "estimated", alternative=alt)
