"""Candidates served by a real MLServer over the Open Inference Protocol, scored by the
worker on the real broker: the same predictions as the model in process, error
predictions while the server is down, recovery when it is back, nothing lost."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from streams.cli import main
from streams.oip import OIPCandidate, OIPOptions
from streams.records import ModelInput, Prediction
from streams.settings import Settings
from streams.worker import ShadowWorker, WorkerConfig
from tests.integration.helpers import create_topics, wait_for_topics
from tests.integration.model_servers import ServerProcess, mlserver, write_mlserver_repository
from tests.integration.test_worker import CODEC, produce, read_records

pytestmark = pytest.mark.integration

COLUMNS = ("tenure", "spend", "visits")


def _training_data(seed: int = 7) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(400, len(COLUMNS)))
    y = x @ np.array([1.5, -2.0, 0.5]) + rng.normal(scale=0.3, size=400)
    return x, y


@pytest.fixture(scope="module")
def models() -> dict[str, Any]:
    from sklearn.linear_model import LinearRegression, LogisticRegression

    x, y = _training_data()
    return {
        "churn-clf": LogisticRegression().fit(x, (y > 0).astype(int)),
        "spend-reg": LinearRegression().fit(x, y),
    }


@pytest.fixture(scope="module")
def repository(models: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mlserver")
    write_mlserver_repository(root, models)
    return root


@pytest.fixture(scope="module")
def server(repository: Path) -> Iterator[ServerProcess]:
    process = mlserver(repository, ["churn-clf", "spend-reg"])
    process.start()
    yield process
    process.stop()


def _inputs(prefix: str, model: str, count: int, seed: int) -> list[ModelInput]:
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(count, len(COLUMNS))) * 2.0
    return [
        ModelInput(f"{prefix}{i}", model, 0, dict(zip(COLUMNS, map(float, row), strict=True)))
        for i, row in enumerate(rows)
    ]


def _local(model: Any, inputs: list[ModelInput]) -> list[float | str]:
    matrix = np.array([[r.numeric[c] for c in COLUMNS] for r in inputs])
    predicted = model.predict(matrix).tolist()
    return [str(v) if isinstance(v, int) else float(v) for v in predicted]


def _send(settings: Settings, inputs: list[ModelInput]) -> None:
    produce(settings, [(r.request_id.encode(), CODEC.encode(r)) for r in inputs])


def _topics_ready(settings: Settings) -> None:
    """Create the topics and wait until the metadata shows them (the worker checks)."""
    create_topics(settings)
    wait_for_topics(settings)


class RunningWorker:
    def __init__(self, settings: Settings, candidate: OIPCandidate, name: str) -> None:
        config = WorkerConfig(name=name, only_model=name, status_every=0, batch_size=200)
        self.worker = ShadowWorker(settings, candidate, "v2", config=config)
        self.stop = threading.Event()
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.worker.run(self.stop)
        except BaseException as exc:  # shown by the test, not lost in the thread
            self.failure = exc

    def close(self) -> None:
        self.stop.set()
        self.thread.join(60)
        assert not self.thread.is_alive()
        assert self.failure is None, f"the worker stopped: {self.failure!r}"


def _predictions(
    settings: Settings, want: int, workers: list[RunningWorker]
) -> dict[str, Prediction]:
    records = read_records(settings, settings.topics.shadow_predictions, want=want, timeout=90)
    for running in workers:
        assert running.failure is None, f"the worker stopped: {running.failure!r}"
    predictions = [r for r in records if isinstance(r, Prediction)]
    by_id = {p.request_id: p for p in predictions}
    assert len(by_id) == len(predictions), "a request was scored twice"
    return by_id


def test_predictions_equal_the_in_process_models(
    kafka_settings: Settings, server: ServerProcess, models: dict[str, Any]
) -> None:
    _topics_ready(kafka_settings)
    inputs = {name: _inputs(name[:3], name, 300, seed=i) for i, name in enumerate(sorted(models))}
    workers = [
        RunningWorker(
            kafka_settings,
            OIPCandidate(OIPOptions(server.url, name, "v1", COLUMNS, batch_size=32)),
            name,
        )
        for name in sorted(models)
    ]
    try:
        _send(kafka_settings, [r for rows in inputs.values() for r in rows])
        by_id = _predictions(kafka_settings, 600, workers)
    finally:
        for running in workers:
            running.close()
            running.worker.adapter.model.close()
    for name, rows in inputs.items():
        expected = _local(models[name], rows)
        got = [by_id[r.request_id] for r in rows]
        assert [p.error for p in got] == [None] * len(rows)
        assert [p.value for p in got] == expected, name
        assert {(p.model, p.version) for p in got} == {(name, "v2")}
    assert {type(v) for v in _local(models["churn-clf"], inputs["churn-clf"])} == {str}
    assert {type(v) for v in _local(models["spend-reg"], inputs["spend-reg"])} == {float}


def test_a_stopped_server_gives_error_predictions_then_recovers(
    kafka_settings: Settings, server: ServerProcess, models: dict[str, Any]
) -> None:
    _topics_ready(kafka_settings)
    options = OIPOptions(server.url, "churn-clf", features=COLUMNS, batch_size=16,
                         timeout_ms=1500, retries=2, backoff_ms=20)  # fmt: skip
    candidate = OIPCandidate(options)
    running = RunningWorker(kafka_settings, candidate, "churn-clf")
    before = _inputs("a", "churn-clf", 100, seed=1)
    during = _inputs("b", "churn-clf", 100, seed=2)
    after = _inputs("c", "churn-clf", 100, seed=3)
    try:
        _send(kafka_settings, before)
        _predictions(kafka_settings, 100, [running])
        server.stop()
        _send(kafka_settings, during)
        _predictions(kafka_settings, 200, [running])
        server.start()
        _send(kafka_settings, after)
        by_id = _predictions(kafka_settings, 300, [running])
    finally:
        running.close()
        candidate.close()
        if server.process is None:  # the next tests want it
            server.start()
    assert set(by_id) == {r.request_id for r in before + during + after}
    model = models["churn-clf"]
    for rows in (before, after):
        assert [by_id[r.request_id].value for r in rows] == _local(model, rows)
    down = [by_id[r.request_id] for r in during]
    assert all(p.value is None and p.error for p in down)
    assert {p.error.split(":")[0] for p in down if p.error} == {"oip"}
    assert running.worker.metrics.errors == 100


def test_the_worker_command_says_when_the_model_is_not_served(
    kafka_settings: Settings, server: ServerProcess
) -> None:
    create_topics(kafka_settings)
    args = ["worker", "--oip-url", server.url, "--oip-model", "no-such-model",
            "--oip-version", "v9", "--oip-ready-timeout", "0",
            "--bootstrap", kafka_settings.kafka_bootstrap,
            "--topic-prefix", kafka_settings.topic_prefix]  # fmt: skip
    started = time.monotonic()
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert "'no-such-model'" in result.output and server.url in result.output
    assert "/v2/models/no-such-model/versions/v9/ready answered HTTP 404" in result.output
    assert time.monotonic() - started < 30
