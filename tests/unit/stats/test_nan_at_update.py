"""NaN and infinities never reach a test statistic: every numeric test of the catalogue
refuses them at ``update`` with a ``ValueError`` (the edge counts them before: the
validity gate, ``streams.join.validity``)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.stats import PredictionPowered
from streams.stats.catalog import TEST_KINDS, make_test

NUMERIC = sorted(t for t, kinds in TEST_KINDS.items() if kinds != ("categorical",))
finite = st.floats(-1e6, 1e6, allow_nan=False)
bad = st.sampled_from([math.nan, math.inf, -math.inf])
bad_pair = st.one_of(st.tuples(bad, finite), st.tuples(finite, bad), st.tuples(bad, bad))


def test_the_catalogue_has_every_numeric_test() -> None:
    assert {"msprt", "asymptotic_cs", "quantile_cs", "paired_t", "ks"} <= set(NUMERIC)


@pytest.mark.parametrize("test", NUMERIC)
@settings(max_examples=25, deadline=None)
@given(good=st.lists(st.tuples(finite, finite), max_size=5), pair=bad_pair)
def test_a_nonfinite_value_raises_value_error_at_update(
    test: str, good: list[tuple[float, float]], pair: tuple[float, float]
) -> None:
    binary = TEST_KINDS[test] == ("binary",)
    stat = make_test(test, min_samples=2)
    for x, y in good:
        stat.update(float(x > 0) if binary else x, float(y > 0) if binary else y)
    with pytest.raises(ValueError):
        stat.update(*pair)


@settings(max_examples=25, deadline=None)
@given(pair=bad_pair)
def test_the_prediction_powered_estimate_refuses_them_too(pair: tuple[float, float]) -> None:
    ppi = PredictionPowered()
    with pytest.raises(ValueError):
        ppi.update_proxy(*pair)
    with pytest.raises(ValueError):
        ppi.update(*pair, 0.0, 0.0)
