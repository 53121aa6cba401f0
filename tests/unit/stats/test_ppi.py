"""Prediction-powered verdicts before the labels: the estimator against its formula, its
interval's coverage when labels are missing at random, and the bench's vectorised copy."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from scipy import stats

from streams.stats import NonFiniteError, PredictionPowered
from tests.unit.stats._helpers import close


def bench() -> ModuleType:
    path = Path(__file__).resolve().parents[3] / "bench" / "validity.py"
    spec = importlib.util.spec_from_file_location("validity", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def feed(d: np.ndarray, f: np.ndarray, lab: np.ndarray, **kw: object) -> PredictionPowered:
    t = PredictionPowered(**kw)  # type: ignore[arg-type]
    for di, fi, li in zip(d.tolist(), f.tolist(), lab.tolist(), strict=True):
        t.update_proxy(0.0, fi)
        if li:
            t.update(0.0, di, 0.0, fi)
    return t


def test_estimate_is_the_regression_adjusted_mean() -> None:
    rng = np.random.default_rng(0)
    f = rng.normal(0.2, 1.0, 3000)
    d = 0.8 * f + rng.normal(0.0, 0.6, 3000)
    lab = rng.random(3000) < 0.2
    theta, se, lam = feed(d, f, lab).estimate()
    dl, fl = d[lab], f[lab]
    lam_ref = np.cov(dl, fl)[0, 1] / np.var(fl, ddof=1)
    assert close(lam, lam_ref, 1e-9)
    assert close(theta, dl.mean() - lam_ref * (fl.mean() - f.mean()), 1e-9)
    var = np.var(dl - lam_ref * fl, ddof=1) / lab.sum() + lam_ref**2 * np.var(f, ddof=1) / 3000
    assert close(se, math.sqrt(var), 1e-9)
    assert se < stats.sem(dl)  # narrower than the labels-only mean


def test_interval_covers_when_labels_are_missing_at_random() -> None:
    rng = np.random.default_rng(1)
    misses = 0
    for _ in range(300):
        f = rng.exponential(1.0, 1500) - 1.0  # skewed proxy
        d = f + rng.normal(0.0, 1.0, 1500)  # true mean 0
        lab = rng.random(1500) < 0.2
        lo, hi = feed(d, f, lab, looks=1).get().ci
        misses += not lo < 0.0 < hi
    assert misses / 300 <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / 300)


def test_result_is_estimated_and_refuses_non_finite() -> None:
    t = PredictionPowered()
    assert t.get().window == "estimated" and math.isinf(t.get().ci[1])
    with pytest.raises(NonFiniteError):
        t.update(0.0, math.nan, 0.0, 1.0)
    with pytest.raises(NonFiniteError):
        t.update_proxy(0.0, math.inf)
    assert t.n == 0 and t.n_paired == 0


def test_bench_vectorised_equals_streaming_at_every_look() -> None:
    v = bench()
    rng = np.random.default_rng(2)
    d, f = v.late_label_losses(rng, (3, 4000), 0.9)
    lab = rng.random((3, 4000)) < 0.2
    every, alpha = 200, 0.05
    got = v.first_alert_ppi(d, f, lab, alpha, every)
    for r in range(3):
        t = PredictionPowered("greater", alpha=alpha, looks=4000 // every)
        first = math.inf
        for i in range(4000):
            t.update_proxy(0.0, float(f[r, i]))
            if lab[r, i]:
                t.update(0.0, float(d[r, i]), 0.0, float(f[r, i]))
            if (i + 1) % every == 0 and first == math.inf:
                res = t.get()
                if res.n >= 100 and res.pvalue <= alpha / t.looks:
                    first = i + 1.0
        assert first == got[r]
