"""Feature splitting, prediction values and privacy rules."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.hook.features import Privacy, split_features, to_label, to_probabilities

scalars = st.one_of(
    st.floats(allow_nan=False),
    st.integers(-(2**40), 2**40),
    st.booleans(),
    st.text(max_size=5),
    st.none(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@given(st.dictionaries(st.text(max_size=8), scalars, max_size=12))
def test_split_partitions_every_feature(features: dict[str, Any]) -> None:
    f = split_features(features)
    assert set(f.numeric) | set(f.categorical) | set(f.extra) == set(features)
    assert not (set(f.numeric) & set(f.categorical) or set(f.numeric) & set(f.extra))
    for name, value in features.items():
        if isinstance(value, int | float):
            assert f.numeric[name] == value
        elif isinstance(value, str):
            assert f.categorical[name] == value
        else:
            assert f.extra[name] == value


def test_split_examples() -> None:
    f = split_features(
        {
            "age": 41,
            "score": 0.5,
            "vip": True,
            "plan": "pro",
            "tags": ["a", "b"],
            "address": {"city": "Lyon"},
            "missing": None,
            "np_float": np.float32(1.5),
            "np_int": np.int64(7),
            "np_bool": np.bool_(True),
            "np_str": np.str_("x"),
            "vector": np.array([1.0, 2.0]),
        }
    )
    assert f.numeric == {
        "age": 41, "score": 0.5, "vip": True, "np_float": 1.5, "np_int": 7.0, "np_bool": True
    }  # fmt: skip
    assert f.categorical == {"plan": "pro", "np_str": "x"}
    assert f.extra == {
        "tags": ["a", "b"], "address": {"city": "Lyon"}, "missing": None, "vector": [1.0, 2.0]
    }  # fmt: skip
    assert type(f.categorical["np_str"]) is str
    assert split_features(None).numeric == {}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.25, 0.25),
        (np.float64(0.5), 0.5),
        (np.float32(0.5), 0.5),
        (3, "3"),
        (np.int64(3), "3"),
        (True, "True"),
        (np.bool_(False), "False"),
        ("churn", "churn"),
        (None, None),
    ],
)
def test_to_label(value: Any, expected: Any) -> None:
    result = to_label(value)
    assert result == expected
    assert type(result) is type(expected)


def test_to_probabilities_makes_text_labels() -> None:
    assert to_probabilities({1: 0.75, np.int64(0): np.float64(0.25)}) == {"1": 0.75, "0": 0.25}
    assert to_probabilities(None) is None


def test_deny_wins_over_allow_and_allow_filters() -> None:
    privacy = Privacy(allow={"age", "plan", "ssn"}, deny={"ssn"})
    f = privacy.apply(split_features({"age": 1, "plan": "pro", "ssn": "123", "other": [1]}))
    assert f.numeric == {"age": 1}
    assert f.categorical == {"plan": "pro"}
    assert f.extra == {}


def test_hashed_fields_are_salted_hex_and_categorical() -> None:
    features = {"email": "a@b.c", "user_id": 1234, "history": [1, 2]}
    one = Privacy(hash_fields={"email", "user_id", "history"}, salt="s1")
    two = Privacy(hash_fields={"email", "user_id", "history"}, salt="s2")
    f1, f2 = one.apply(split_features(features)), two.apply(split_features(features))
    assert set(f1.categorical) == {"email", "user_id", "history"}
    assert f1.numeric == {} and f1.extra == {}
    for name, digest in f1.categorical.items():
        assert len(digest) == 32 and int(digest, 16) >= 0
        assert digest != f2.categorical[name]  # the salt matters
        assert str(features[name]) not in digest
    assert one.apply(split_features(features)) == f1  # deterministic


def test_segments_follow_deny_and_hash() -> None:
    privacy = Privacy(deny={"ip"}, hash_fields={"user"}, salt="k")
    tags = privacy.apply_segments({"country": "de", "ip": "1.2.3.4", "user": "bob"})
    assert set(tags) == {"country", "user"}
    assert tags["country"] == "de" and tags["user"] == privacy.hash_value("bob")


def test_no_rules_is_inactive() -> None:
    assert not Privacy().active
    assert Privacy(deny={"x"}).active


def test_salt_longer_than_a_blake2b_key_is_rejected() -> None:
    with pytest.raises(ValueError, match="salt"):
        Privacy(salt="x" * 65)
