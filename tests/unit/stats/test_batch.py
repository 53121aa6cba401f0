"""Batch updates, and the windows that feed them late, against the same pairs one by one."""

from __future__ import annotations

import math
import pickle
from collections import deque
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.stats import (
    KS,
    PSI,
    Agreement,
    ChiSquare,
    MannWhitney,
    McNemar,
    PairedT,
    QuantileRatio,
    SignTest,
    Statistic,
    TwoProportions,
    Wilcoxon,
    Window,
)
from streams.stats._sorted import SortedList
from streams.stats.windows import BatchStatistic

# Few distinct values, signed zeros among them: ties, zero differences and the order of
# equal values all matter.
NUMBERS = st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.5, 3.0, 1e-300, 7.25])
BITS = st.sampled_from([0.0, 1.0])
LABELS = st.sampled_from(["a", "b", "c"])

KINDS: dict[str, tuple[st.SearchStrategy[Any], list[Callable[[], Statistic]]]] = {
    "numeric": (
        NUMBERS,
        [Wilcoxon, SignTest, MannWhitney, KS, lambda: QuantileRatio(0.5), PairedT],
    ),
    "binary": (BITS, [McNemar, TwoProportions, lambda: Wilcoxon("greater")]),
    "categorical": (LABELS, [ChiSquare, PSI, lambda: Agreement(0.1)]),
}
BATCHED = [(kind, make) for kind, (_, makes) in KINDS.items() for make in makes]


def pairs(kind: str, min_size: int = 0) -> st.SearchStrategy[list[tuple[Any, Any]]]:
    values = KINDS[kind][0]
    return st.lists(st.tuples(values, values), min_size=min_size, max_size=120)


def signed(values: list[float]) -> list[tuple[float, float]]:
    return [(v, math.copysign(1.0, v)) for v in values]


@pytest.mark.parametrize(("kind", "make"), BATCHED)
@given(data=st.data())
@settings(max_examples=40, deadline=None)
def test_update_and_revert_many_equal_one_pair_at_a_time(
    kind: str, make: Callable[[], Any], data: st.DataObject
) -> None:
    added = data.draw(pairs(kind))
    gone = added[: data.draw(st.integers(0, len(added)))]
    cut = data.draw(st.integers(0, len(added)))
    one, many = make(), make()
    assert isinstance(many, BatchStatistic)
    for x, y in added:
        one.update(x, y)
    for x, y in gone:
        one.revert(x, y)
    for part in (added[:cut], added[cut:]):
        many.update_many([x for x, _ in part], [y for _, y in part])
    many.revert_many([x for x, _ in gone], [y for _, y in gone])
    assert repr(many.get()) == repr(one.get()) and many.n == one.n


@given(
    values=st.lists(NUMBERS, max_size=200),
    data=st.data(),
)
@settings(max_examples=60, deadline=None)
def test_sorted_list_add_and_remove_many_equal_one_at_a_time(
    values: list[float], data: st.DataObject
) -> None:
    gone = values[: data.draw(st.integers(0, len(values)))]
    one, many = SortedList(), SortedList()
    for v in values:
        one.add(v)
    for v in gone:
        one.remove(v)
    many.add_many(values)
    many.remove_many(gone)
    assert signed(list(many)) == signed(list(one))


class PerPair:
    """A window that feeds every statistic pair by pair, as windows always did."""

    def __init__(self, stats: list[Statistic], size: int | None, seconds: float | None) -> None:
        self.stats, self.size, self.seconds = stats, size, seconds
        self.held: deque[tuple[Any, Any, float]] = deque()

    def update(self, x: Any, y: Any, t: float) -> None:
        self.held.append((x, y, t))
        for s in self.stats:
            s.update(x, y)
        if self.size is not None and len(self.held) > self.size:
            self._evict()
        self.expire(t)

    def expire(self, now: float) -> None:
        while self.seconds is not None and self.held and self.held[0][2] <= now - self.seconds:
            self._evict()

    def _evict(self) -> None:
        x, y, _ = self.held.popleft()
        for s in self.stats:
            s.revert(x, y)


WINDOWED: dict[str, list[Callable[[], Statistic]]] = {
    "numeric": [PairedT, Wilcoxon, SignTest, MannWhitney],
    "binary": [McNemar, TwoProportions],
    "categorical": [ChiSquare, Agreement],
}
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("update"), st.integers(0, 3)),  # the time step to the pair
        st.tuples(st.just("read"), st.integers(0, 3)),  # expire this far ahead, then read
        st.tuples(st.just("pickle"), st.just(0)),
    ),
    min_size=10,
    max_size=150,
)


@pytest.mark.parametrize("window", [{"size": 3}, {"seconds": 2.0}], ids=["count", "time"])
@pytest.mark.parametrize("kind", WINDOWED)
@given(data=st.data())
@settings(max_examples=40, deadline=None)
def test_window_equals_feeding_pair_by_pair(
    kind: str, window: dict[str, Any], data: st.DataObject
) -> None:
    makes = WINDOWED[kind]
    values = KINDS[kind][0]
    w = Window(*(make() for make in makes), **window)
    reference = PerPair([make() for make in makes], window.get("size"), window.get("seconds"))
    t = 0.0
    for op, step in data.draw(OPS):
        if op == "update":
            t += step
            x, y = data.draw(values), data.draw(values)
            w.update(x, y, t)
            reference.update(x, y, t)
        elif op == "read":
            w.expire(t + step)
            reference.expire(t + step)
            expected = [s.get().with_window(w.label) for s in reference.stats]
            assert [repr(r) for r in w.results()] == [repr(r) for r in expected]
            assert w.n == len(reference.held)
        else:
            w = pickle.loads(pickle.dumps(w))
    w.expire(t)
    reference.expire(t)
    assert [repr(s.get()) for s in w.stats] == [repr(s.get()) for s in reference.stats]
