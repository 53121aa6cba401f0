"""Timing needs only the small Publishing interface: a fake publisher stands in for Kafka."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from streams.hook.wrap import Publishing, Tracked, current_request_id, shadow_predict


class FakePublisher:
    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []
        self.errors: list[tuple[str, str]] = []

    def publish(
        self,
        features: Mapping[str, Any] | None = None,
        prediction: Any = None,
        **options: Any,
    ) -> str:
        self.published.append({"features": features, "prediction": prediction, **options})
        return str(options.get("request_id"))

    def record_error(self, where: str, exc: BaseException) -> None:
        self.errors.append((where, type(exc).__name__))


def test_decorated_function_publishes_through_any_publishing_object() -> None:
    fake = FakePublisher()
    publisher: Publishing = fake

    @shadow_predict(publisher, model="m", segments={"country": "fr"})
    def predict(features: dict[str, float]) -> float:
        return features["x"] * 2

    assert predict({"x": 1.5}) == 3.0
    [record] = fake.published
    assert record["features"] == {"x": 1.5}
    assert record["prediction"] == 3.0
    assert record["model"] == "m"
    assert record["segments"] == {"country": "fr"}
    assert record["error"] is None
    assert record["latency_ms"] >= 0.0
    assert record["request_id"] == current_request_id()
    assert fake.errors == []


def test_failing_extractor_is_recorded_and_the_call_goes_on() -> None:
    fake = FakePublisher()

    def broken(*args: Any, **kwargs: Any) -> Mapping[str, Any] | None:
        raise KeyError("features")

    @shadow_predict(fake, features=broken)
    def predict(features: dict[str, float]) -> float:
        return 1.0

    assert predict({"x": 1.0}) == 1.0
    assert fake.errors == [("features extractor", "KeyError")]
    assert fake.published[0]["features"] is None


def test_tracked_records_the_models_exception_and_reraises_it() -> None:
    fake = FakePublisher()
    with pytest.raises(ValueError, match="bad input"), Tracked(fake, {"x": 1.0}) as tracked:
        tracked.prediction = 0.5
        raise ValueError("bad input")
    [record] = fake.published
    assert record["prediction"] is None
    assert record["error"] == "ValueError: bad input"
    assert record["request_id"] == tracked.request_id
