"""The lazily sorted multiset behind the rank tests, against an insertion sort."""

from __future__ import annotations

import math
import pickle
import random
from bisect import bisect_left, insort_right

import pytest

from streams.stats._sorted import _MIN_PENDING, SortedList


def signed(values: list[float]) -> list[tuple[float, float]]:
    """Values with their sign bit, so that 0.0 and -0.0 are told apart."""
    return [(v, math.copysign(1.0, v)) for v in values]


def reference_remove(held: list[float], v: float) -> None:
    j = bisect_left(held, v)
    if j == len(held) or held[j] != v:
        raise ValueError(v)
    del held[j]


@pytest.mark.parametrize("seed", range(40))
def test_matches_an_insertion_sort_through_adds_removes_and_reads(seed: int) -> None:
    rng = random.Random(seed)
    pool = [0.0, -0.0, 1.0, -3.0, 2.5, 1e-300] + [rng.uniform(-5, 5) for _ in range(6)]
    s, reference, inside = SortedList(), [], []
    for _ in range(rng.randrange(1, 6000)):
        if inside and rng.random() < 0.45:
            v = inside.pop(0 if rng.random() < 0.7 else rng.randrange(len(inside)))
            s.remove(v)
            reference_remove(reference, v)
        else:
            v = rng.choice(pool)
            inside.append(v)
            s.add(v)
            insort_right(reference, v)  # equal values in the order they came
        if rng.random() < 0.01:
            assert signed(list(s)) == signed(reference)
            if reference:
                k = rng.randrange(len(reference))
                assert s[k] == reference[k] and type(s[k]) is float
        if rng.random() < 0.002:
            s = pickle.loads(pickle.dumps(s))
        assert len(s) == len(reference)
    assert signed(s.to_array().tolist()) == signed(reference)


def test_pending_changes_stay_bounded() -> None:
    s = SortedList()
    for i in range(20 * _MIN_PENDING):
        s.add(float(i % 97))
        if i % 2:
            s.remove(float(i % 97))
        assert len(s._adds) <= max(_MIN_PENDING, len(s)) + 1
    assert len(s) == 10 * _MIN_PENDING


def test_removing_a_missing_value_fails_at_the_next_read() -> None:
    s = SortedList([1.0, 2.0])
    s.remove(3.0)
    with pytest.raises(ValueError, match=r"3\.0 not in SortedList"):
        s.to_array()
    with pytest.raises(IndexError):
        SortedList([1.0])[1]


def test_sorted_values_are_read_only_and_merge_adds_everything() -> None:
    a, b = SortedList([3.0, 1.0]), SortedList([2.0, 2.0])
    a.update(b)
    assert list(a) == [1.0, 2.0, 2.0, 3.0] and a == SortedList([2.0, 3.0, 2.0, 1.0])
    with pytest.raises(ValueError):
        a.to_array()[0] = 9.0
    a.clear()
    assert len(a) == 0 and list(a) == []
