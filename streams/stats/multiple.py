"""Multiple-testing control across metrics and segments.

* :func:`benjamini_hochberg` -- BH adjusted p-values (q-values) for fixed-horizon results.
* :func:`e_bh` -- e-BH (Wang & Ramdas 2022): FDR control from e-values under any dependence,
  for anytime-valid results.
* :func:`bonferroni` -- alpha split over ``m`` hypotheses (what the default rules use).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["benjamini_hochberg", "bonferroni", "e_bh"]


def bonferroni(alpha: float, m: int) -> float:
    """Per-hypothesis level ``alpha / m``.

    Examples
    --------
    >>> bonferroni(0.05, 5)
    0.01
    """
    if m < 1:
        raise ValueError(f"m must be >= 1, got {m}")
    return alpha / m


def benjamini_hochberg(pvalues: Sequence[float]) -> list[float]:
    """BH adjusted p-values; ``nan`` p-values stay ``nan`` and are not counted.

    Matches ``scipy.stats.false_discovery_control(p, method="bh")``.

    Examples
    --------
    >>> [round(q, 3) for q in benjamini_hochberg([0.01, 0.04, 0.03, 0.2])]
    [0.04, 0.053, 0.053, 0.2]
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m:
        pv = p[ok]
        order = np.argsort(pv)
        ranked = pv[order] * m / np.arange(1, m + 1)
        q = np.minimum.accumulate(ranked[::-1])[::-1]
        res = np.empty(m)
        res[order] = np.minimum(q, 1.0)
        out[ok] = res
    return [float(x) for x in out]


def e_bh(evalues: Sequence[float], alpha: float) -> list[bool]:
    """e-BH rejections: reject the ``k*`` largest e-values, ``k* = max{k: e_(k) >= m/(alpha k)}``.

    Examples
    --------
    >>> e_bh([100.0, 50.0, 1.0, 0.5], alpha=0.05)
    [True, True, False, False]
    """
    e = np.asarray(evalues, dtype=np.float64)
    m = e.size
    if m == 0:
        return []
    order = np.argsort(-e)
    ks = np.arange(1, m + 1)
    ok = e[order] >= m / (alpha * ks)
    kstar = int(ks[ok].max()) if ok.any() else 0
    rej = np.zeros(m, dtype=bool)
    rej[order[:kstar]] = True
    return [bool(x) for x in rej] if not math.isnan(alpha) else [False] * m
