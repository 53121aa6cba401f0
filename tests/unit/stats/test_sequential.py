"""The anytime-valid test keeps its false-alarm rate when checked after every event."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest

from streams.stats import MixtureSPRT
from streams.stats.sequential import log_evalue, mixture_rho

RUNS, EVENTS, ALPHA = 400, 3000, 0.05


def ever_alerts(d: np.ndarray, alpha: float, min_samples: int, two_sided: bool = False) -> float:
    """Share of runs whose e-value ever reaches 1/alpha (checked after every event)."""
    s, v = np.cumsum(d, axis=1), np.cumsum(d * d, axis=1)
    n = np.arange(1, d.shape[1] + 1)
    burn = max(1, min_samples)
    pos = v[:, burn - 1 :] > 0
    idx = np.where(pos.any(axis=1), pos.argmax(axis=1) + burn - 1, d.shape[1] - 1)
    scale = v[np.arange(d.shape[0]), idx] / (idx + 1.0)
    rho = mixture_rho(np.where(scale > 0, scale, 1.0), alpha, 2000.0)[:, None]
    active = (n[None, :] >= np.maximum(idx + 1, min_samples)[:, None]) & (scale[:, None] > 0)
    le = log_evalue(s, v, rho, two_sided)
    return float(np.mean((active & (le >= math.log(1 / alpha))).any(axis=1)))


MC = 3 * math.sqrt(ALPHA * (1 - ALPHA) / RUNS)  # three Monte-Carlo standard errors


@pytest.mark.parametrize("min_samples", [1, 100])
@pytest.mark.parametrize(
    "kind", ["bernoulli_0.9", "bernoulli_0.9_correlated", "rare_0.01", "lognormal", "normal"]
)
def test_false_alarm_rate_holds_under_continuous_monitoring(kind: str, min_samples: int) -> None:
    rng = np.random.default_rng(zlib.crc32(f"{kind}-{min_samples}".encode()))
    shape = (RUNS, EVENTS)
    if kind.startswith("bernoulli"):
        live = rng.random(shape) < 0.9
        cand = rng.random(shape) < 0.9
        if kind.endswith("correlated"):
            cand = np.where(rng.random(shape) < 0.8, live, cand)  # sparse discordance
        d = cand.astype(float) - live.astype(float)
    elif kind == "rare_0.01":
        d = (rng.random(shape) < 0.01).astype(float) - (rng.random(shape) < 0.01)
    elif kind == "lognormal":
        d = rng.lognormal(0, 1, shape) - rng.lognormal(0, 1, shape)
    else:
        d = rng.standard_normal(shape)
    for two_sided in (False, True):
        assert ever_alerts(d, ALPHA, min_samples, two_sided) <= ALPHA + MC


def test_detects_a_real_regression() -> None:
    rng = np.random.default_rng(9)
    d = (rng.random((200, EVENTS)) < 0.85).astype(float) - (rng.random((200, EVENTS)) < 0.9)
    assert ever_alerts(-d, ALPHA, 100) > 0.9


def test_scalar_matches_vectorised() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=1000), rng.normal(0.05, 1, size=1000)
    m = MixtureSPRT("greater", min_samples=50)
    les = []
    for a, b in zip(x, y, strict=True):
        les.append(m.update(float(a), float(b)).log_e())
    d = y - x
    s, v = np.cumsum(d), np.cumsum(d * d)
    rho = mixture_rho(float(v[49] / 50), 0.05, 2000.0)
    ref = log_evalue(s, v, rho, False)
    np.testing.assert_allclose(les[49:], ref[49:], rtol=1e-9, atol=1e-12)
    assert all(le == 0.0 for le in les[:49])


def test_confidence_sequence_covers_and_shrinks() -> None:
    rng = np.random.default_rng(4)
    m = MixtureSPRT(min_samples=10)
    widths, miss = [], 0
    for i in range(5000):
        m.update(0.0, float(rng.normal(0.3, 1.0)))
        if i >= 10:
            lo, hi = m.confidence_sequence()
            miss += not lo <= 0.3 <= hi
            widths.append(hi - lo)
    assert miss == 0 and widths[-1] < widths[100] / 4


def test_validation_and_burn_in() -> None:
    with pytest.raises(ValueError, match="alpha"):
        MixtureSPRT(alpha=0.0)
    with pytest.raises(ValueError, match="alternative"):
        MixtureSPRT("bigger")
    m = MixtureSPRT(min_samples=10)
    for _ in range(9):
        m.update(0.0, 5.0)
    assert m.get().pvalue == 1.0 and m.get().ci == (-math.inf, math.inf)
