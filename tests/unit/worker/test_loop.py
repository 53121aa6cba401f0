"""The worker loop on an in-process fake of the Kafka layer (the real broker: integration)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from streams.codec import Codec
from streams.process_cost import WorkerCost
from streams.records import DeadLetter, ModelInput, Prediction, Role
from streams.settings import Settings
from streams.worker import ShadowWorker, WorkerConfig, WorkerError
from tests.unit.kafka.fakes import FakeBroker, FakeClients

SETTINGS = Settings(topic_prefix="t")
TOPICS = SETTINGS.topics


def _broker(inputs: int, junk: int = 0) -> FakeBroker:
    broker = FakeBroker()
    broker.create(*TOPICS.all)
    codec = Codec()
    for i in range(inputs):
        record = ModelInput(f"r{i}", "churn", 1_000 + i, {"age": float(i)}, segments={"c": "DE"})
        broker.append(TOPICS.inputs, f"r{i}".encode(), codec.encode(record))
    for i in range(junk):
        broker.append(TOPICS.inputs, f"bad{i}".encode(), b"not avro")
    return broker


def _run(
    broker: FakeBroker, model: Any, until: Any, cost: WorkerCost | None = None, **config: Any
) -> tuple[ShadowWorker, FakeClients, BaseException | None]:
    clients = FakeClients(broker)
    worker = ShadowWorker(
        SETTINGS,
        model,
        "v2",
        config=WorkerConfig(name="churn", status_every=0, batch_size=7, **config),
        clients=clients,
        cost=cost,
    )
    stop = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            worker.run(stop)
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 10
    while not until(worker) and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.005)
    stop.set()
    thread.join(10)
    return worker, clients, failure[0] if failure else None


def test_every_input_is_scored_delivered_and_committed() -> None:
    broker = _broker(50)
    worker, _, failure = _run(broker, lambda f: f["age"] * 2, lambda w: w.metrics.produced >= 50)
    assert failure is None
    codec = Codec()
    predictions = [codec.decode(v) for _, v in broker.records(TOPICS.shadow_predictions)]
    assert len(predictions) == 50 and all(isinstance(p, Prediction) for p in predictions)
    by_id = {p.request_id: p for p in predictions}  # type: ignore[union-attr]
    assert by_id["r21"].value == 42.0 and by_id["r21"].role is Role.SHADOW
    assert by_id["r21"].version == "v2" and by_id["r21"].segments == {"c": "DE"}
    # Offsets committed to the end of every partition, nothing past what was delivered.
    ends = {(TOPICS.inputs, p): len(log) for p, log in enumerate(broker.topics[TOPICS.inputs])}
    committed = broker.committed[worker.group_id]
    assert {k: v for k, v in ends.items() if v} == committed
    assert worker.metrics.consumed == worker.metrics.produced == 50


def test_bad_inputs_go_to_the_dead_letter_topic_and_the_stream_goes_on() -> None:
    broker = _broker(10, junk=3)
    worker, _, failure = _run(broker, lambda f: 1.0, lambda w: w.metrics.dead_lettered >= 3)
    assert failure is None
    codec = Codec()
    letters = [codec.decode(v) for _, v in broker.records(TOPICS.dlq)]
    assert len(letters) == 3 and all(isinstance(d, DeadLetter) for d in letters)
    assert {d.key for d in letters} == {b"bad0", b"bad1", b"bad2"}  # type: ignore[union-attr]
    assert all(d.component == "worker" and d.value == b"not avro" for d in letters)  # type: ignore[union-attr]
    assert worker.metrics.produced == 10


def test_a_model_error_is_a_prediction_with_the_error_not_a_stop() -> None:
    broker = _broker(5)

    def model(features: dict[str, float]) -> float:
        if features["age"] == 3.0:
            raise ValueError("no")
        return 1.0

    worker, _, failure = _run(broker, model, lambda w: w.metrics.produced >= 5)
    assert failure is None and worker.metrics.errors == 1
    codec = Codec()
    errors = [codec.decode(v).error for _, v in broker.records(TOPICS.shadow_predictions)]  # type: ignore[union-attr]
    assert sorted(e for e in errors if e) == ["ValueError: no"]


def test_a_failed_delivery_stops_the_worker_without_committing_past_it() -> None:
    broker = _broker(20)
    broker.failing_topics.add(TOPICS.shadow_predictions)
    worker, _, failure = _run(broker, lambda f: 1.0, lambda w: False)
    assert isinstance(failure, WorkerError)
    assert "delivery failed" in str(failure)
    assert not broker.committed.get(worker.group_id)
    assert worker.metrics.delivery_failures == 1


def test_stopping_delivers_and_commits_everything_consumed() -> None:
    broker = _broker(30)
    clients = FakeClients(broker)
    worker = ShadowWorker(
        SETTINGS, lambda f: 1.0, "v2", config=WorkerConfig(status_every=0), clients=clients
    )
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    deadline = time.monotonic() + 10
    while worker.metrics.consumed < 30 and time.monotonic() < deadline:
        time.sleep(0.005)
    stop.set()
    thread.join(10)
    assert sum(broker.committed[worker.group_id].values()) == 30


def test_missing_topics_stop_the_worker_before_it_starts() -> None:
    broker = FakeBroker()
    broker.create(TOPICS.inputs)
    worker = ShadowWorker(SETTINGS, lambda f: 1.0, "v2", clients=FakeClients(broker))
    with pytest.raises(Exception, match="missing topics"):
        worker.run(threading.Event())


def test_an_oversized_input_or_output_never_makes_the_producer_raise() -> None:
    broker = _broker(6)
    codec = Codec()
    huge = ModelInput("huge", "churn", 1, {"age": 1.0}, segments={"c": "x" * 1_100_000})
    broker.append(TOPICS.inputs, b"huge", codec.encode(huge))

    def model(features: dict[str, float]) -> str:
        return "y" * 1_100_000 if features["age"] == 2.0 else "ok"

    worker, _, failure = _run(
        broker, model, lambda w: w.metrics.produced >= 6 and w.metrics.dead_lettered >= 1
    )
    assert failure is None
    [letter] = [codec.decode(v) for _, v in broker.records(TOPICS.dlq)]
    assert isinstance(letter, DeadLetter) and letter.error_type == "too_large"
    assert letter.key == b"huge" and letter.value is not None and len(letter.value) == 1024
    assert "sha256" in letter.reason
    predictions = [codec.decode(v) for _, v in broker.records(TOPICS.shadow_predictions)]
    [error] = [p.error for p in predictions if p.error]  # type: ignore[union-attr]
    assert "over message.max.bytes" in error
    assert worker.metrics.errors == 1


def test_predictions_never_time_out_whatever_client_properties_say(tmp_path: Any) -> None:
    properties = tmp_path / "client.properties"
    properties.write_text("message.timeout.ms=15000\nclient.rack=r1\n")
    settings = Settings(topic_prefix="t", kafka_config_file=properties)
    worker = ShadowWorker(settings, lambda f: 1.0, "v2", config=WorkerConfig(name="churn"))
    config = worker.producer_config()
    assert config["message.timeout.ms"] == 0 and config["client.rack"] == "r1"
    chosen = WorkerConfig(name="churn", producer_overrides={"message.timeout.ms": 60_000})
    worker = ShadowWorker(settings, lambda f: 1.0, "v2", config=chosen)
    assert worker.producer_config()["message.timeout.ms"] == 60_000  # explicit overrides win
