"""Timing needs only the small Publishing interface: a fake publisher stands in for Kafka."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import pytest

from streams.hook.wrap import Publishing, Tracked, current_request_id, shadow_predict


class FakePublisher:
    def __init__(self, measure_cost: bool = False) -> None:
        self.measure_cost = measure_cost
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


def _burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_cpu_time_is_measured_only_when_the_publisher_opts_in() -> None:
    """The thread's CPU time, not the wall time: a sleep adds latency and no CPU."""
    measuring, plain = FakePublisher(measure_cost=True), FakePublisher()
    for fake in (measuring, plain):

        @shadow_predict(fake)
        def predict(features: dict[str, float]) -> float:
            _burn(0.02)
            time.sleep(0.05)
            return 1.0

        predict({"x": 1.0})
    [timed], [untimed] = measuring.published, plain.published
    assert untimed["cpu_ms"] is None
    assert 18.0 <= timed["cpu_ms"] < timed["latency_ms"] - 40.0


def test_an_async_prediction_is_not_cpu_timed() -> None:
    """Other tasks run on the event loop's thread meanwhile: its CPU time is not the call's."""
    fake = FakePublisher(measure_cost=True)

    @shadow_predict(fake)
    async def predict(features: dict[str, float]) -> float:
        return 1.0

    asyncio.run(predict({"x": 1.0}))
    assert fake.published[0]["cpu_ms"] is None
