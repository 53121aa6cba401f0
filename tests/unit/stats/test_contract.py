"""Contract checks run over every statistic: revert, merge, reset, pickling, windows."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from streams.stats import (
    KS,
    PSI,
    Agreement,
    AsymptoticCS,
    ChiSquare,
    MannWhitney,
    McNemar,
    MixtureSPRT,
    PairedT,
    QuantileCS,
    QuantileRatio,
    SignTest,
    Statistic,
    TwoProportions,
    Wilcoxon,
    Window,
)
from tests.unit.stats._helpers import assert_same

rng = np.random.default_rng(11)


def numeric(n: int) -> list[tuple[float, float]]:
    x = np.round(rng.normal(10, 2, n), 1)  # rounding gives ties and zero differences
    return list(zip(x.tolist(), np.round(x + rng.normal(0.3, 1, n), 1).tolist(), strict=True))


def binary(n: int) -> list[tuple[float, float]]:
    return [
        (float(a), float(b)) for a, b in zip(rng.random(n) < 0.9, rng.random(n) < 0.85, strict=True)
    ]


def cat(n: int) -> list[tuple[str, str]]:
    labs = np.array(["a", "b", "c"])
    return list(
        zip(labs[rng.integers(0, 3, n)].tolist(), labs[rng.integers(0, 3, n)].tolist(), strict=True)
    )


CASES: list[tuple[str, Callable[[], Any], Callable[[int], list[Any]]]] = [
    ("paired_t", PairedT, numeric),
    ("wilcoxon", Wilcoxon, numeric),
    ("sign", SignTest, numeric),
    ("mcnemar", McNemar, binary),
    ("two_proportions", TwoProportions, binary),
    ("ks", KS, numeric),
    ("mannwhitney", MannWhitney, numeric),
    ("quantile_ratio", QuantileRatio, numeric),
    ("msprt", lambda: MixtureSPRT("greater", min_samples=5), numeric),
    ("asymptotic_cs", lambda: AsymptoticCS("greater", min_samples=5, skew_factor=0.0), numeric),
    ("quantile_cs", lambda: QuantileCS(0.9, min_samples=5), numeric),
    ("chi2", ChiSquare, cat),
    ("psi", PSI, cat),
    ("agreement", lambda: Agreement(0.1), cat),
]
ids = [c[0] for c in CASES]
# the sequential tests are cumulative by design (a sliding window voids the anytime guarantee)
WINDOWED = [c for c in CASES if c[0] not in ("msprt", "asymptotic_cs", "quantile_cs")]


def fed(make: Callable[[], Any], data: list[Any]) -> Any:
    s = make()
    for x, y in data:
        s.update(x, y)
    return s


@pytest.mark.parametrize(("name", "make", "gen"), CASES, ids=ids)
def test_is_statistic(name: str, make: Callable[[], Any], gen: Any) -> None:
    s = make()
    assert isinstance(s, Statistic)
    assert s.update(*gen(1)[0]) is s


@pytest.mark.parametrize(("name", "make", "gen"), CASES, ids=ids)
def test_update_then_revert_restores(name: str, make: Callable[[], Any], gen: Any) -> None:
    a, b = gen(60), gen(25)
    s = fed(make, a + b)
    for x, y in b:
        s.revert(x, y)
    assert_same(s.get(), fed(make, a).get(), rel=1e-7, abs_=1e-9)


@pytest.mark.parametrize(("name", "make", "gen"), CASES, ids=ids)
def test_merge_equals_one_pass(name: str, make: Callable[[], Any], gen: Any) -> None:
    a, b = gen(70), gen(40)
    merged = fed(make, a).merge(fed(make, b))
    assert_same(merged.get(), fed(make, a + b).get(), rel=1e-9, abs_=1e-12)


@pytest.mark.parametrize(("name", "make", "gen"), CASES, ids=ids)
def test_reset_equals_fresh(name: str, make: Callable[[], Any], gen: Any) -> None:
    data = gen(30)
    s = fed(make, gen(50)).reset()
    for x, y in data:
        s.update(x, y)
    assert_same(s.get(), fed(make, data).get())


@pytest.mark.parametrize(("name", "make", "gen"), CASES, ids=ids)
def test_pickle_roundtrip(name: str, make: Callable[[], Any], gen: Any) -> None:
    s = fed(make, gen(40))
    t = pickle.loads(pickle.dumps(s))
    assert_same(t.get(), s.get())
    more = gen(5)
    for x, y in more:
        s.update(x, y)
        t.update(x, y)
    assert_same(t.get(), s.get())


@pytest.mark.parametrize(("name", "make", "gen"), WINDOWED, ids=[c[0] for c in WINDOWED])
def test_count_window_equals_batch_on_last_k(name: str, make: Callable[[], Any], gen: Any) -> None:
    data = gen(120)
    w = Window(make(), size=50)
    for i, (x, y) in enumerate(data):
        w.update(x, y, float(i))
    assert w.n == 50
    r = w.get()
    assert r.window == "count:50"
    assert_same(r, fed(make, data[-50:]).get(), rel=1e-7, abs_=1e-9)
    clone = pickle.loads(pickle.dumps(w))
    assert_same(clone.get(), r)


@pytest.mark.parametrize(("name", "make", "gen"), WINDOWED, ids=[c[0] for c in WINDOWED])
def test_time_window_equals_batch_on_recent(name: str, make: Callable[[], Any], gen: Any) -> None:
    data = gen(100)
    w = Window(make(), seconds=30.0)
    for i, (x, y) in enumerate(data):
        w.update(x, y, float(i))
    assert_same(w.get(), fed(make, data[-30:]).get(), rel=1e-7, abs_=1e-9)
    w.expire(109.0)  # data at t <= 79 falls out
    assert w.n == 20
    assert_same(w.get(), fed(make, data[-20:]).get(), rel=1e-7, abs_=1e-9)
    assert w.get().window == "time:30s"


def test_window_validation_and_clone() -> None:
    with pytest.raises(ValueError, match="size"):
        Window(PairedT(), size=0)
    with pytest.raises(ValueError, match="exactly one"):
        Window(PairedT())
    with pytest.raises(ValueError, match="seconds"):
        Window(PairedT(), seconds=0)
    w = Window(PairedT(), size=3).update(1.0, 2.0)
    c = w.clone()
    assert c.n == 0 and w.n == 1 and copy.copy(w).n == 1
    assert w.reset().n == 0
