"""Frozen, scipy-style result objects shared by every test in :mod:`streams.stats`.

Every test returns a :class:`TestResult`: ``statistic``, ``pvalue`` (``nan`` when the test is
descriptive), ``effect`` with a confidence interval ``ci``, the sample size ``n`` and a
description of the ``window`` the result was computed on.  Sequential tests also fill
``evalue``.  Results explain themselves with :meth:`TestResult.explain`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

__all__ = [
    "ALTERNATIVES",
    "NonFiniteError",
    "TestResult",
    "check_alternative",
    "check_finite_many",
    "reject_nonfinite",
]

ALTERNATIVES = ("two-sided", "less", "greater")


class NonFiniteError(ValueError):
    """A statistic was offered a NaN or an infinite value (or a pair whose difference, or its
    square, overflows).  Nothing was added: one such value would otherwise poison a running
    sum for the life of a monitor.  The edge that feeds the core counts these."""


def reject_nonfinite(x: float, y: float) -> None:
    """Raise :class:`NonFiniteError` for the pair (live ``x``, candidate ``y``)."""
    raise NonFiniteError(f"non-finite pair (live={x!r}, candidate={y!r}) refused")


def check_finite_many(xs: Sequence[float], ys: Sequence[float]) -> None:
    """Raise :class:`NonFiniteError` for the first pair with a NaN or infinite value, or
    whose difference squared overflows (what every ``update`` refuses)."""
    for x, y in zip(xs, ys, strict=True):
        d = y - x
        if d * d - d * d:  # nan unless x, y, their difference and its square are finite
            reject_nonfinite(x, y)


def check_alternative(alternative: str) -> str:
    """Return ``alternative`` if it is one of :data:`ALTERNATIVES`, else raise ``ValueError``."""
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}")
    return alternative


@dataclass(frozen=True, slots=True)
class TestResult:
    """Outcome of one statistical test on one window.

    Parameters
    ----------
    test : str
        Test name, e.g. ``"paired_t"`` or ``"msprt"``.
    statistic : float
        Test statistic (for sequential tests, the e-value).
    pvalue : float
        p-value (always-valid for sequential tests, ``nan`` for descriptive ones).
    effect : float
        Effect size, oriented candidate minus live unless ``effect_name`` says otherwise.
    ci : tuple of float
        Confidence interval (or confidence sequence) for ``effect``.
    n : int
        Number of observations (pairs) the result is based on.
    window : str
        ``"count:N"``, ``"time:Ss"``, ``"cumulative"`` or ``"all"``.
    effect_name : str
        What ``effect`` measures, e.g. ``"mean_diff"``.
    alternative : str
        ``"two-sided"``, ``"less"`` or ``"greater"`` (candidate relative to live).
    evalue : float or None
        e-value of a sequential test.
    live_value, candidate_value : float or None
        Each side's mean (sequential mean tests) or quantile (``quantile_ratio``), where
        the test keeps them.

    Examples
    --------
    >>> r = TestResult("paired_t", 2.5, 0.02, 0.1, (0.01, 0.19), 40)
    >>> r.significant(0.05)
    True
    >>> print(r.explain())
    paired_t: statistic=2.5 p=0.02 mean_diff=0.1 CI=[0.01, 0.19] n=40 window=all
    """

    __test__ = False  # keep pytest from collecting this class

    test: str
    statistic: float
    pvalue: float
    effect: float
    ci: tuple[float, float]
    n: int
    window: str = "all"
    effect_name: str = "mean_diff"
    alternative: str = "two-sided"
    evalue: float | None = None
    live_value: float | None = None
    """What the effect compares, on live's side: its mean (mean tests) or quantile."""
    candidate_value: float | None = None
    """The same on the candidate's side."""

    def significant(self, alpha: float) -> bool:
        """Whether ``pvalue <= alpha`` (``False`` when the p-value is ``nan``)."""
        return not math.isnan(self.pvalue) and self.pvalue <= alpha

    def with_window(self, window: str) -> TestResult:
        """Return a copy labelled with ``window``."""
        return replace(self, window=window)

    def explain(self) -> str:
        """One line: statistic, p- or e-value, effect, interval, n and window."""
        parts = [f"{self.test}: statistic={_fmt(self.statistic)}", f"p={_fmt(self.pvalue)}"]
        if self.evalue is not None:
            parts.append(f"e={_fmt(self.evalue)}")
        lo, hi = self.ci
        parts.append(f"{self.effect_name}={_fmt(self.effect)} CI=[{_fmt(lo)}, {_fmt(hi)}]")
        parts.append(f"n={self.n} window={self.window}")
        return " ".join(parts)


def _fmt(x: float) -> str:
    return f"{x:.4g}"
