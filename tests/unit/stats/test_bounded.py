"""The bounded-difference confidence sequence: anytime coverage, zero variance, one-at-a-time."""

from __future__ import annotations

import math
import pickle
import zlib

import numpy as np
import pytest

from streams.stats import BoundedCS
from streams.stats.bounded import BET_CAP, eb_sequence

RUNS, EVENTS, ALPHA = 400, 3000, 0.05
MC = 3 * math.sqrt(ALPHA * (1 - ALPHA) / RUNS)  # three Monte-Carlo standard errors


def draws(kind: str, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """(runs, events) differences in [-1, 1] and their true mean."""
    shape = (RUNS, EVENTS)
    rates = {"rare_equal": (0.01, 0.01), "rare_worse": (0.01, 0.03), "accuracy": (0.9, 0.88)}
    p_live, p_cand = rates[kind]
    d = (rng.random(shape) < p_cand).astype(float) - (rng.random(shape) < p_live)
    return d, p_cand - p_live


@pytest.mark.parametrize("kind", ["rare_equal", "rare_worse", "accuracy"])
def test_covers_the_mean_at_every_n(kind: str) -> None:
    """No symmetry needed: the CS misses the true mean at any time in <= alpha of the runs."""
    d, mean = draws(kind, np.random.default_rng(zlib.crc32(kind.encode())))
    lo, hi = eb_sequence((d + 1.0) / 2.0, ALPHA)
    m = (mean + 1.0) / 2.0
    missed = ((lo > m) | (hi < m)).any(axis=1)
    assert float(missed.mean()) <= ALPHA + MC


def test_zero_variance_shrinks_like_one_over_n() -> None:
    cs = BoundedCS(-1.0, 1.0, alpha=0.025, min_samples=100)
    for _ in range(50):
        cs.update(0.0, 0.0)
    assert cs.get().ci == (-math.inf, math.inf)  # burn-in
    for _ in range(1950):
        cs.update(1.0, 1.0)
    lo, hi = cs.get().ci
    radius = 2.0 * math.log(2.0 / 0.025) / (BET_CAP * 2000)
    assert lo == pytest.approx(-radius) and hi == pytest.approx(radius)
    assert hi < 0.01 and cs.mean == 0.0 and cs.get().pvalue == 1.0


def test_detects_a_shift_and_reports_a_valid_pvalue() -> None:
    rng = np.random.default_rng(3)
    cs = BoundedCS(-1.0, 1.0, alpha=0.05, min_samples=100)
    for x, y in zip(rng.random(5000) < 0.01, rng.random(5000) < 0.06, strict=True):
        cs.update(float(x), float(y))
    r = cs.get()
    assert 0.01 < r.ci[0] < 0.05 < r.ci[1] and r.pvalue < 0.05 and r.evalue == r.statistic


def test_scalar_matches_vectorised() -> None:
    rng = np.random.default_rng(5)
    x, y = rng.random(2000) < 0.1, rng.random(2000) < 0.12
    cs = BoundedCS(-1.0, 1.0, alpha=0.05, min_samples=1)
    pairs = zip(x, y, strict=True)
    got = np.array([cs.update(float(a), float(b)).confidence_sequence() for a, b in pairs])
    lo, hi = eb_sequence(((y.astype(float) - x) + 1.0)[None, :] / 2.0, 0.05)
    np.testing.assert_allclose(got[:, 0], 2.0 * lo[0] - 1.0, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got[:, 1], 2.0 * hi[0] - 1.0, rtol=1e-9, atol=1e-12)


def test_general_bounds_validation_clipping_and_pickle() -> None:
    with pytest.raises(ValueError, match="bounds"):
        BoundedCS(1.0, -1.0)
    with pytest.raises(ValueError, match="alpha"):
        BoundedCS(-1.0, 1.0, alpha=1.0)
    cs = BoundedCS(-500.0, 500.0, min_samples=10)
    for _ in range(20):
        cs.update(20.0, 20.0)
    cs.update(0.0, 900.0)  # out of the declared bounds: clipped and counted, not fatal
    assert cs.clipped == 1 and cs.n == 21 and cs.live_mean == pytest.approx(400 / 21)
    clone = pickle.loads(pickle.dumps(cs))
    assert clone.update(1.0, 2.0).get() == cs.update(1.0, 2.0).get()
    assert cs.reset().n == 0 and math.isnan(cs.mean)
