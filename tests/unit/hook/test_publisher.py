"""The publisher with no broker to talk to: it never raises, never blocks, counts exactly.

The bootstrap address is a closed loopback port, so nothing is ever delivered; delivery
itself is tested on a real broker in ``tests/integration/test_hook*.py``.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from streams.hook import HookCounters, ShadowPublisher, current_request_id, shadow_predict
from streams.hook.sender import LabelItem, PredictionItem
from streams.settings import Settings


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.fixture
def make_publisher() -> Iterator[Callable[..., ShadowPublisher]]:
    made: list[ShadowPublisher] = []
    settings = Settings(kafka_bootstrap=f"127.0.0.1:{_closed_port()}", topic_prefix="offline")

    def make(**options: Any) -> ShadowPublisher:
        options.setdefault("export_metrics", False)
        options.setdefault("close_at_exit", False)
        publisher = ShadowPublisher(settings, model="m", version="v1", **options)
        made.append(publisher)
        return publisher

    yield make
    for publisher in made:
        publisher.close(timeout=0.5)


def test_calls_are_fast_and_drops_exact_with_no_broker(
    make_publisher: Callable[..., ShadowPublisher],
) -> None:
    publisher = make_publisher(buffer_size=100)
    slowest = 0.0
    for i in range(80):  # 2 records each
        start = time.perf_counter()
        publisher.publish({"x": float(i), "c": "a"}, 0.5)
        publisher.label(f"r{i}", 1.0)  # 1 record each
        slowest = max(slowest, time.perf_counter() - start)
    assert slowest < 0.05
    counters = publisher.counters
    assert counters.published == 100
    assert counters.dropped == 80 * 3 - 100
    assert counters.in_flight == 100
    assert counters.delivered == counters.failed == counters.errors == 0


def test_close_gives_up_what_is_in_flight(make_publisher: Callable[..., ShadowPublisher]) -> None:
    publisher = make_publisher(buffer_size=10)
    for i in range(7):
        publisher.label(f"r{i}", "yes")
    wait_for(lambda: publisher._buffer.pending == 0)
    assert publisher.flush(0.05) == 7
    assert publisher.close(timeout=1.0) == 7
    counters = publisher.counters
    assert (counters.failed, counters.in_flight, counters.delivered) == (7, 0, 0)
    assert publisher.publish(None, 1.0)  # still returns an id
    assert publisher.counters.dropped == 1
    assert publisher.close() == 0  # idempotent


def test_sampling_counts_and_agrees_between_publish_and_label(
    make_publisher: Callable[..., ShadowPublisher],
) -> None:
    publisher = make_publisher(sample_rate=0.3)
    ids = [publisher.publish({"x": 1.0}, 0.5) for _ in range(2000)]
    kept = [rid for rid in ids if publisher.sampled(rid)]
    labelled = [rid for rid in ids if publisher.label(rid, 1.0)]
    assert labelled == kept
    assert 450 < len(kept) < 750
    counters = publisher.counters
    assert counters.published == 3 * len(kept)
    assert counters.sampled_out == 3 * (len(ids) - len(kept))


def test_unencodable_records_are_counted_not_raised(
    make_publisher: Callable[..., ShadowPublisher],
) -> None:
    publisher = make_publisher()
    publisher.publish({"bad\x1fname": 1.0}, 0.5)  # the input cannot be encoded
    publisher.publish(None, 0.5, extra={"x": float("nan")})  # JSON refuses NaN
    wait_for(lambda: publisher.counters.unencodable == 2)
    assert publisher.counters.in_flight == 2  # the two predictions wait for Kafka


def test_an_unreachable_schema_registry_is_counted_not_raised_nor_waited_on() -> None:
    settings = Settings(
        kafka_bootstrap=f"127.0.0.1:{_closed_port()}",
        topic_prefix="offline",
        schema_registry_url=f"http://127.0.0.1:{_closed_port()}/apis/ccompat/v7",
    )
    publisher = ShadowPublisher(
        settings, model="m", version="v1", export_metrics=False, close_at_exit=False
    )
    try:
        start = time.perf_counter()
        for i in range(50):
            publisher.publish({"x": float(i)}, 0.5)  # 2 records each
        assert time.perf_counter() - start < 0.5  # the request path never waits on it
        wait_for(lambda: publisher.counters.unencodable == 100, timeout=30)
        counters = publisher.counters
        assert counters.in_flight == counters.errors == counters.delivered == 0
    finally:
        publisher.close(timeout=0.5)


def test_bad_arguments_are_counted_not_raised(
    make_publisher: Callable[..., ShadowPublisher],
) -> None:
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no text")

    class BrokenMapping(Mapping[str, Any]):
        def __getitem__(self, key: str) -> Any:
            raise RuntimeError("boom")

        def __iter__(self) -> Iterator[str]:
            return iter(["a"])

        def __len__(self) -> int:
            return 1

    publisher = make_publisher()
    rid = publisher.publish({"x": 1.0}, 0.5, segments=5)  # type: ignore[arg-type]
    assert isinstance(rid, str) and len(rid) == 36
    assert publisher.counters.errors == 1  # failed on the request thread
    publisher.publish(BrokenMapping(), 0.5)  # fails in the background thread
    publisher.publish({"x": 1.0}, Unprintable())  # so does this
    wait_for(lambda: publisher.counters.errors == 3)
    wait_for(lambda: publisher.counters.dropped == 4)  # both records of both calls
    counters = publisher.counters
    assert (counters.published, counters.in_flight) == (4, 0)


def test_wrapped_exception_reaches_the_caller_unchanged(
    make_publisher: Callable[..., ShadowPublisher],
) -> None:
    publisher = make_publisher()
    error = ZeroDivisionError("model blew up")

    @shadow_predict(publisher)
    def predict(features: dict[str, float]) -> float:
        raise error

    with pytest.raises(ZeroDivisionError) as caught:
        predict({"x": 1.0})
    assert caught.value is error
    assert current_request_id() is not None
    assert publisher.counters.published == 2  # input and failed prediction


def test_wrapped_async_function_returns_and_raises_unchanged(
    make_publisher: Callable[..., ShadowPublisher],
) -> None:
    publisher = make_publisher()
    result = object()

    @shadow_predict(publisher, outputs=lambda _: 1.0)
    async def predict(features: dict[str, float], fail: bool = False) -> object:
        await asyncio.sleep(0)
        if fail:
            raise KeyError("missing")
        return result

    assert asyncio.run(predict({"x": 1.0})) is result
    with pytest.raises(KeyError, match="missing"):
        asyncio.run(predict({"x": 1.0}, fail=True))
    assert publisher.counters.published == 4


def test_counters_are_exported_to_prometheus(
    make_publisher: Callable[..., ShadowPublisher],
) -> None:
    registry = CollectorRegistry()
    one = make_publisher(export_metrics=True, registry=registry, buffer_size=1, name="one")
    two = make_publisher(export_metrics=True, registry=registry, name="two")
    one.label("a", 1.0)
    one.label("b", 1.0)
    two.label("c", 1.0)

    def sample(publisher: str, outcome: str) -> float | None:
        labels = {"publisher": publisher, "outcome": outcome}
        return registry.get_sample_value("shadow_hook_records_total", labels)

    assert sample("one", "published") == 1.0
    assert sample("one", "dropped") == 1.0
    assert sample("two", "published") == 1.0
    assert registry.get_sample_value("shadow_hook_in_flight", {"publisher": "two"}) == 1.0
    assert isinstance(one.counters, HookCounters)


def test_publish_hands_over_every_field_in_its_place(
    make_publisher: Callable[..., ShadowPublisher],
) -> None:
    # publish() builds its item with tuple.__new__ (no field count check): field by field.
    publisher = make_publisher()
    publisher._sender.stop(timeout=5.0)  # the background thread ends; items stay queued
    features, numeric, categorical = {"x": 1.0}, {"n": 2.0}, {"k": "v"}
    probabilities, segments = {"a": 0.75, "b": 0.25}, {"country": "fr"}
    publisher.publish(
        features,
        "a",
        request_id="r1",
        model="m2",
        version="v2",
        probabilities=probabilities,
        latency_ms=2.5,
        error="E: x",
        segments=segments,
        cpu_ms=1.5,
        numeric=numeric,
        categorical=categorical,
        extra=[1],
        timestamp_ms=123,
    )
    publisher.publish(None, 0.5, request_id="r2", timestamp_ms=124)
    publisher.label("r1", 1.0, timestamp_ms=125)
    first, second, label = publisher._buffer.take()
    assert type(first) is PredictionItem
    assert first == PredictionItem(
        request_id="r1",
        timestamp_ms=123,
        model="m2",
        version="v2",
        records=2,
        features=features,
        numeric=numeric,
        categorical=categorical,
        extra=[1],
        value="a",
        probabilities=probabilities,
        latency_ms=2.5,
        error="E: x",
        segments=segments,
        cpu_ms=1.5,
    )
    assert first.segments is not segments  # copied on the request thread
    assert second == PredictionItem(
        "r2", 124, "m", "v1", 1, *[None] * 4, 0.5, None, 0.0, None, None, None
    )
    assert second.records == 1
    assert label == LabelItem(request_id="r1", timestamp_ms=125, model="m", value=1.0)
    assert label.records == 1
    assert publisher.counters.in_flight == 4


def test_a_record_over_the_producers_size_limit_is_counted_too_large_never_sent(
    make_publisher: Callable[..., ShadowPublisher],
) -> None:
    publisher = make_publisher()
    start = time.perf_counter()
    publisher.publish(None, "x" * 1_200_000)  # the prediction is over message.max.bytes
    assert time.perf_counter() - start < 0.05
    wait_for(lambda: publisher.counters.too_large == 1)
    counters = publisher.counters
    assert (counters.published, counters.in_flight, counters.failed, counters.errors) == (
        1,
        0,
        0,
        0,
    )
