"""The model adapter without Kafka: every kind of model, errors isolated, deadlines."""

from __future__ import annotations

import pickle
import re
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from streams.records import ModelInput
from streams.worker.loading import ModelLoadError, load_model, load_model_file, model_label
from streams.worker.model import ModelAdapter, Outcome, features_of, normalize_output


def inputs(n: int = 4) -> list[ModelInput]:
    return [
        ModelInput(f"r{i}", "churn", 0, {"a": float(i), "b": float(-i)}, {"plan": "pro"})
        for i in range(n)
    ]


class PerRecord:
    def predict(self, features: dict[str, Any]) -> str:
        return "high" if features["a"] >= 2 else "low"


class Batched:
    def __init__(self) -> None:
        self.calls: list[int] = []

    def predict_batch(self, rows: list[dict[str, Any]]) -> list[float]:
        self.calls.append(len(rows))
        if any(row["a"] == 3.0 for row in rows):
            raise ValueError("a=3 is cursed")
        return [row["a"] * 2 for row in rows]


def test_features_merge_numeric_categorical_and_extra() -> None:
    record = ModelInput("r", "m", 0, {"a": 1.0}, {"plan": "pro"}, extra=[1, 2])
    assert features_of(record) == {"a": 1.0, "plan": "pro", "extra": [1, 2]}


def test_callable_gets_features_and_is_timed() -> None:
    adapter = ModelAdapter(lambda f: f["a"] + 0.5)
    outcomes = adapter.predict(inputs(3))
    assert [o.value for o in outcomes] == [0.5, 1.5, 2.5]
    assert all(o.error is None and o.latency_ms >= 0 for o in outcomes)
    assert adapter.kind == "callable" and not adapter.batched


def test_predict_object_per_record() -> None:
    adapter = ModelAdapter(PerRecord())
    assert adapter.kind == "predict"
    assert [o.value for o in adapter.predict(inputs())] == ["low", "low", "high", "high"]


def test_predict_batch_called_once_per_batch_with_shared_latency() -> None:
    model = Batched()
    outcomes = ModelAdapter(model).predict(inputs(3))
    assert model.calls == [3]
    assert [o.value for o in outcomes] == [0.0, 2.0, 4.0]
    assert len({o.latency_ms for o in outcomes}) == 1


def test_raising_batch_is_retried_record_by_record() -> None:
    model = Batched()
    outcomes = ModelAdapter(model).predict(inputs(5))
    assert [o.value for o in outcomes] == [0.0, 2.0, 4.0, None, 8.0]
    assert outcomes[3].error == "ValueError: a=3 is cursed"
    assert [o.error for i, o in enumerate(outcomes) if i != 3] == [None] * 4
    assert model.calls == [5, 1, 1, 1, 1, 1]


def test_raising_callable_errors_only_its_input() -> None:
    def model(features: dict[str, Any]) -> float:
        if features["a"] == 1.0:
            raise KeyError("boom")
        return 1.0

    outcomes = ModelAdapter(model).predict(inputs(3))
    assert [o.error for o in outcomes] == [None, "KeyError: 'boom'", None]
    assert outcomes[1].value is None


def test_unusable_output_is_an_error() -> None:
    outcomes = ModelAdapter(lambda f: object()).predict(inputs(1))
    assert outcomes[0].error is not None and outcomes[0].error.startswith("TypeError")


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (True, ("True", None)),
        (np.int64(2), ("2", None)),
        (np.float32(0.5), (0.5, None)),
        (np.array([3.0]), (3.0, None)),
        ("yes", ("yes", None)),
        ({"value": 1, "probabilities": {0: 0.3, 1: 0.7}}, ("1", {"0": 0.3, "1": 0.7})),
    ],
)
def test_normalize_output(output: Any, expected: Any) -> None:
    assert normalize_output(output) == expected


def test_sklearn_classifier_gives_labels_and_probabilities() -> None:
    x = np.array([[0.0, 0.0], [1.0, -1.0], [2.0, -2.0], [3.0, -3.0]])
    clf = LogisticRegression().fit(x, [0, 0, 1, 1])
    adapter = ModelAdapter(clf)
    outcomes = adapter.predict(inputs())
    assert adapter.kind == "sklearn" and adapter.features == ("a", "b")
    assert [o.value for o in outcomes] == [str(v) for v in clf.predict(x)]
    assert outcomes[0].probabilities is not None
    assert set(outcomes[0].probabilities) == {"0", "1"}
    assert outcomes[3].probabilities == pytest.approx(
        dict(zip(["0", "1"], clf.predict_proba(x)[3], strict=True))
    )


def test_sklearn_regressor_uses_feature_order() -> None:
    x = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 5.0]])
    reg = LinearRegression().fit(x, x[:, 0] * 3 + x[:, 1])
    adapter = ModelAdapter(reg, features=["b", "a"])  # columns as given, not sorted
    record = ModelInput("r", "m", 0, {"a": 1.0, "b": 2.0})
    (outcome,) = adapter.predict([record])
    assert outcome.value == pytest.approx(reg.predict([[2.0, 1.0]])[0])
    assert isinstance(outcome.value, float)


def test_joblib_and_pickle_files(tmp_path: Path) -> None:
    x = np.array([[0.0, 0.0], [3.0, -3.0]])
    clf = LogisticRegression().fit(x, ["no", "yes"])
    joblib.dump(clf, tmp_path / "m.joblib")
    (tmp_path / "m.pkl").write_bytes(pickle.dumps(clf))
    for name in ("m.joblib", "m.pkl"):
        adapter = ModelAdapter(load_model_file(tmp_path / name))
        assert [o.value for o in adapter.predict(inputs(4))][::3] == ["no", "yes"]
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model_file(tmp_path / "missing.joblib")
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    with pytest.raises(ModelLoadError, match=re.escape("junk.pkl")):
        load_model_file(tmp_path / "junk.pkl")


def test_per_record_timeout_hits_only_the_slow_input() -> None:
    def model(features: dict[str, Any]) -> float:
        if features["a"] == 1.0:
            time.sleep(0.5)
        return features["a"]

    started = time.perf_counter()
    outcomes = ModelAdapter(model, timeout_ms=100).predict(inputs(3))
    assert time.perf_counter() - started < 0.45
    assert [o.value for o in outcomes] == [0.0, None, 2.0]
    assert [o.error for o in outcomes] == [None, "timeout", None]


def test_batch_timeout_marks_the_whole_batch() -> None:
    class Slow:
        def predict_batch(self, rows: list[dict[str, Any]]) -> list[float]:
            time.sleep(0.5)
            return [1.0] * len(rows)

    outcomes = ModelAdapter(Slow(), timeout_ms=100).predict(inputs(3))
    assert outcomes == [Outcome(error="timeout")] * 3


def test_load_model_errors_name_the_value() -> None:
    with pytest.raises(ModelLoadError, match=re.escape("'nope.nothing:f'")):
        load_model("nope.nothing:f")
    with pytest.raises(ModelLoadError, match="has no attribute 'nothing'"):
        load_model("math:nothing")
    with pytest.raises(ModelLoadError, match="not MODULE:CALLABLE"):
        load_model("math")
    with pytest.raises(ModelLoadError, match="not callable"):
        load_model("math:pi")
    model = load_model(f"{__name__}:PerRecord")  # a class is instantiated
    assert isinstance(model, PerRecord)
    assert model_label("a.b:c", None) == "c"


def test_not_a_model() -> None:
    with pytest.raises(TypeError, match="not a model"):
        ModelAdapter(42)
