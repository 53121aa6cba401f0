"""``--isolate process``: late or dead model processes are replaced, no input lost or doubled."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from streams.codec import Codec
from streams.records import ModelInput, Prediction
from streams.worker.isolate import IsolatedModel, ModelSource
from tests.unit.worker import hanging_models
from tests.unit.worker.test_loop import TOPICS, _broker, _run

MODELS = "tests.unit.worker.hanging_models"


def _isolated(name: str, timeout_ms: float = 500, processes: int = 2) -> IsolatedModel:
    source = ModelSource(spec=f"{MODELS}:{name}")
    return IsolatedModel(
        getattr(hanging_models, name), source, timeout_ms=timeout_ms, processes=processes
    )


def _inputs(n: int) -> list[ModelInput]:
    return [ModelInput(f"r{i}", "m", 0, {"x": float(i)}) for i in range(n)]


def test_a_process_hanging_forever_is_killed_and_replaced_each_time() -> None:
    model = _isolated("hang_on_sevens", processes=3)  # the three hangs at once
    threads = threading.active_count()
    try:
        outcomes = model.predict(_inputs(220))
    finally:
        model.close()
    timeouts = {i for i, o in enumerate(outcomes) if o.error == "timeout"}
    assert {7, 107, 207} <= timeouts  # (a call late only because the machine is busy too)
    assert all(o.value == 2.0 * i for i, o in enumerate(outcomes) if i not in timeouts)
    assert model.restarts == model.timeouts == len(timeouts)
    assert threading.active_count() <= threads  # no thread left behind by a hang


def test_a_process_that_dies_gives_its_input_an_error_and_the_rest_go_on() -> None:
    model = _isolated("die_on_three", timeout_ms=5000, processes=1)
    try:
        outcomes = model.predict(_inputs(6))
    finally:
        model.close()
    assert [o.value for o in outcomes] == [0.0, 2.0, 4.0, None, 8.0, 10.0]
    assert outcomes[3].error == "model process died (exit code 3)" and model.restarts == 1


def test_a_model_that_cannot_load_is_one_clear_error() -> None:
    model = IsolatedModel(abs, ModelSource(spec=f"{MODELS}:nothing"), timeout_ms=1000)
    with pytest.raises(RuntimeError, match=r"cannot load the model: ModelLoadError: .*nothing"):
        model.predict(_inputs(1))


def test_the_worker_scores_every_input_once_with_an_isolated_model() -> None:
    broker = _broker(120)
    model = _isolated("hang_on_sevens")

    def until(worker: Any) -> bool:
        return bool(worker.metrics.produced >= 120)

    try:
        worker, _, failure = _run(broker, model, until)
    finally:
        model.close()
    assert failure is None
    codec = Codec()
    predictions = [codec.decode(v) for _, v in broker.records(TOPICS.shadow_predictions)]
    ids = [p.request_id for p in predictions if isinstance(p, Prediction)]
    assert sorted(ids) == sorted(f"r{i}" for i in range(120))  # each exactly once
    late = {p.request_id for p in predictions if isinstance(p, Prediction) and p.error}
    assert {"r7", "r107"} <= late and worker.metrics.model_restarts == len(late)
