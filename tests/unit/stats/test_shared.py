"""One window around several tests, and tests sharing their state, change no result."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from streams.stats import (
    KS,
    PSI,
    Agreement,
    ChiSquare,
    MannWhitney,
    McNemar,
    MixtureSPRT,
    PairedT,
    QuantileRatio,
    SignTest,
    Statistic,
    TwoProportions,
    Wilcoxon,
    Window,
)
from streams.stats.windows import share_state

rng = np.random.default_rng(5)
NUMERIC = list(
    zip(
        np.round(rng.lognormal(3, 0.5, 900), 1).tolist(),
        np.round(rng.lognormal(3, 0.5, 900), 1).tolist(),
        strict=True,
    )
)
BITS = [(float(a), float(b)) for a, b in rng.random((900, 2)) < 0.8]
LABELS = [(str(a), str(b)) for a, b in rng.integers(0, 4, (900, 2))]

GROUPS: dict[str, tuple[list[Callable[[], Statistic]], list[tuple[Any, Any]]]] = {
    "latency": (
        [
            PairedT,
            Wilcoxon,
            SignTest,
            MannWhitney,
            lambda: QuantileRatio(0.5),
            lambda: QuantileRatio(0.95),
            lambda: QuantileRatio(0.99),
        ],
        NUMERIC,
    ),
    "distribution": ([KS, MannWhitney], NUMERIC),
    "binary": ([McNemar, TwoProportions], BITS),
    "categorical": ([ChiSquare, PSI, Agreement, lambda: ChiSquare(0.9)], LABELS),
}
WINDOWS = [{"size": 250}, {"seconds": 40.0}]


def separately(
    makes: list[Callable[[], Statistic]], data: list[tuple[Any, Any]], window: dict[str, Any]
) -> list[Window]:
    windows = [Window(make(), **window) for make in makes]
    for i, (x, y) in enumerate(data):
        for w in windows:
            w.update(x, y, i / 10.0)
    return windows


@pytest.mark.parametrize("window", WINDOWS, ids=["count", "time"])
@pytest.mark.parametrize("group", GROUPS)
def test_one_shared_window_gives_every_result_unchanged(group: str, window: dict[str, Any]) -> None:
    makes, data = GROUPS[group]
    stats = [make() for make in makes]
    fed = share_state(stats)
    assert len(fed) < len(stats) or group == "binary"
    shared = Window(*fed, **window)
    for i, (x, y) in enumerate(data):
        shared.update(x, y, i / 10.0)
        if i % 300 == 299:
            stats, shared = pickle.loads(pickle.dumps((stats, shared)))  # keeps the sharing
    alone = separately(makes, data, window)
    shared.expire(len(data) / 10.0 + 5.0)
    for w in alone:
        w.expire(len(data) / 10.0 + 5.0)
    label = shared.label
    # exactly equal, not close: the same operations on the same values
    assert [repr(s.get().with_window(label)) for s in stats] == [repr(w.get()) for w in alone]
    assert [r.test for r in shared.results()] == [s.get().test for s in fed]
    assert all(s.n == w.n for s, w in zip(stats, alone, strict=True))


def test_window_checks_clones_and_resets_all_its_statistics() -> None:
    w = Window(PairedT(), SignTest(), size=3)
    for x, y in NUMERIC[:5]:
        w.update(x, y)
    assert w.n == 3 and [r.n for r in w.results()] == [3, 3]
    c = w.clone()
    assert c.n == 0 and [r.n for r in c.results()] == [0, 0] and w.n == 3
    assert [r.n for r in w.reset().results()] == [0, 0]
    with pytest.raises(ValueError, match="exactly one"):
        Window(PairedT(), SignTest())


def test_mixture_sprts_share_their_sums_when_their_burn_in_is_as_long() -> None:
    makes: list[Callable[[], MixtureSPRT]] = [
        lambda: MixtureSPRT(min_samples=50),
        lambda: MixtureSPRT("greater", null=0.5, alpha=0.01, min_samples=50),
        lambda: MixtureSPRT(min_samples=200),  # its scale is taken later: not shared
    ]
    stats = [make() for make in makes]
    fed = share_state(stats)
    assert fed == [stats[0], stats[2]]
    for i, (x, y) in enumerate(NUMERIC):
        for s in fed:
            s.update(x, y)
        if i == 400:
            stats = pickle.loads(pickle.dumps(stats))  # keeps the sharing
            fed = [stats[0], stats[2]]
    alone = [make() for make in makes]
    for x, y in NUMERIC:
        for s in alone:
            s.update(x, y)
    assert [repr(s.get()) for s in stats] == [repr(s.get()) for s in alone]
