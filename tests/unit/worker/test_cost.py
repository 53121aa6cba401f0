"""What a candidate costs: CPU per prediction where the call runs, the process's memory,
the model's load time and size, carried by every prediction the worker publishes."""

from __future__ import annotations

import doctest
import importlib
import time
from typing import Any

import pytest

from streams.codec import Codec
from streams.process_cost import WorkerCost, current_rss_mb, load_measured, peak_rss_mb
from streams.records import ModelInput, Prediction
from streams.worker import ModelAdapter
from tests.unit.worker.test_loop import TOPICS, _broker, _run

INPUTS = [ModelInput(f"r{i}", "churn", 0, {"age": float(i)}) for i in range(4)]


def burn(seconds: float) -> None:
    """Busy for ``seconds`` of this thread's CPU time (deterministic CPU, any load)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


class Batched:
    def predict_batch(self, rows: list[dict[str, Any]]) -> list[float]:
        burn(0.004 * len(rows))
        time.sleep(0.02)  # waiting costs no CPU
        return [row["age"] for row in rows]


@pytest.mark.parametrize("timeout_ms", [None, 2_000], ids=["caller-thread", "pool"])
def test_a_per_record_calls_cpu_time_is_its_own_thread_cpu(timeout_ms: float | None) -> None:
    def model(features: dict[str, Any]) -> float:
        burn(0.005)
        time.sleep(0.01)
        return 1.0

    adapter = ModelAdapter(model, timeout_ms=timeout_ms, threads=2)
    outcomes = adapter.predict(INPUTS)
    adapter.close()
    for outcome in outcomes:
        assert outcome.cpu_ms is not None and 4.9 <= outcome.cpu_ms < 9.0
        assert outcome.latency_ms >= outcome.cpu_ms + 9.0


@pytest.mark.parametrize("timeout_ms", [None, 2_000], ids=["caller-thread", "pool"])
def test_a_batched_calls_cpu_time_is_shared_equally(timeout_ms: float | None) -> None:
    adapter = ModelAdapter(Batched(), timeout_ms=timeout_ms)
    outcomes = adapter.predict(INPUTS)
    adapter.close()
    shares = {o.cpu_ms for o in outcomes}
    assert len(shares) == 1
    (share,) = shares
    assert share is not None and 3.9 <= share < 6.0  # 16 ms of CPU over 4 inputs


def test_a_failed_call_still_reports_its_cpu_time() -> None:
    def model(features: dict[str, Any]) -> float:
        burn(0.003)
        raise ValueError("no")

    (outcome,) = ModelAdapter(model).predict(INPUTS[:1])
    assert outcome.error == "ValueError: no"
    assert outcome.cpu_ms is not None and outcome.cpu_ms >= 2.9


def test_load_time_and_memory_growth_are_measured() -> None:
    def load() -> bytearray:
        time.sleep(0.02)
        return bytearray(48 * 1024 * 1024)  # touched: resident

    model, seconds, grew = load_measured(load)
    assert len(model) == 48 * 1024 * 1024 and seconds >= 0.02
    assert grew is not None and 40.0 <= grew < 200.0
    rss = current_rss_mb()
    assert rss is not None and rss > 48.0 and peak_rss_mb() > 48.0


def test_the_reading_is_refreshed_at_most_every_interval() -> None:
    now = [0.0]
    cost = WorkerCost(load_s=0.5, model_mb=12.0, worker="w:1", clock=lambda: now[0])
    first = cost.sample()
    assert cost.sample() is first
    now[0] = 1.5
    assert cost.sample() is not first


def test_every_prediction_of_the_worker_carries_its_cost() -> None:
    broker = _broker(20)

    def model(features: dict[str, Any]) -> float:
        burn(0.001)
        return features["age"]

    cost = WorkerCost(load_s=2.5, model_mb=64.0, worker="box:7")
    _, _, failure = _run(broker, model, lambda w: w.metrics.produced >= 20, cost=cost)
    assert failure is None
    codec = Codec()
    predictions = [codec.decode(v) for _, v in broker.records(TOPICS.shadow_predictions)]
    assert len(predictions) == 20
    for p in predictions:
        assert isinstance(p, Prediction)
        assert p.cpu_ms is not None and p.cpu_ms >= 0.9
        assert (p.worker, p.load_s, p.model_mb) == ("box:7", 2.5, 64.0)
        assert p.worker_rss_mb is not None and p.worker_peak_mb is not None
        assert p.worker_peak_mb >= p.worker_rss_mb > 10.0


def test_docstring_examples() -> None:
    assert doctest.testmod(importlib.import_module("streams.process_cost")).failed == 0
