"""Sampling by request id: deterministic, at the configured rate, shared by every record."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.hook.ids import uuid7
from streams.hook.sampling import Sampler, sample_point


@given(st.text())
def test_sample_point_is_deterministic_and_in_unit_interval(request_id: str) -> None:
    point = sample_point(request_id)
    assert 0.0 <= point < 1.0
    assert sample_point(request_id) == point


@pytest.mark.parametrize("rate", [0.01, 0.1, 0.5, 0.9])
def test_kept_fraction_matches_rate(rate: float) -> None:
    n = 40_000
    kept = sum(Sampler(rate).keep(uuid7()) for _ in range(n))
    sd = math.sqrt(n * rate * (1 - rate))
    assert abs(kept - n * rate) < 5 * sd


def test_extremes() -> None:
    ids = [uuid7() for _ in range(1000)]
    assert all(Sampler(1.0).keep(r) for r in ids)
    assert not any(Sampler(0.0).keep(r) for r in ids)


def test_lower_rate_keeps_a_subset() -> None:
    ids = [uuid7() for _ in range(5000)]
    low = {r for r in ids if Sampler(0.1).keep(r)}
    high = {r for r in ids if Sampler(0.3).keep(r)}
    assert low <= high


def test_same_decision_in_another_sampler() -> None:
    ids = [f"req-{i}" for i in range(2000)]
    assert [Sampler(0.25).keep(r) for r in ids] == [Sampler(0.25).keep(r) for r in ids]


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_rate_out_of_range_is_rejected(rate: float) -> None:
    with pytest.raises(ValueError, match="sample_rate"):
        Sampler(rate)
