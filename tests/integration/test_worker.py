"""The shadow worker in-process on the real broker: errors, dead letters, missing topics."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from streams.cli import main
from streams.codec import Codec
from streams.kafka.config import client_config
from streams.records import DeadLetter, ModelInput, Prediction, Record, Role
from streams.settings import Settings
from streams.worker import ShadowWorker, WorkerConfig
from tests.integration.helpers import create_topics

CODEC = Codec()


def produce(settings: Settings, items: list[tuple[bytes, bytes]]) -> list[tuple[int, int]]:
    """Produce ``(key, value)`` pairs to the inputs topic; their (partition, offset)s."""
    producer = Producer(client_config(settings, partitioner="murmur2_random"))
    places: dict[int, tuple[int, int]] = {}

    def delivered(index: int) -> Any:
        def callback(err: KafkaError | None, msg: Message) -> None:
            assert err is None, err
            places[index] = (msg.partition() or 0, msg.offset() or 0)

        return callback

    for index, (key, value) in enumerate(items):
        producer.produce(settings.topics.inputs, value, key, on_delivery=delivered(index))
        producer.poll(0)
    assert producer.flush(30) == 0
    return [places[i] for i in range(len(items))]


def read_records(settings: Settings, topic: str, want: int, timeout: float = 60) -> list[Record]:
    """Every record of ``topic`` from the start until ``want`` were read (or timeout)."""
    consumer = Consumer(client_config(settings, **{"group.id": f"reader-{uuid.uuid4().hex[:6]}"}))
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    records: list[Record] = []
    deadline = time.monotonic() + timeout
    try:
        while len(records) < want and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.2):
                if message.error() is None:
                    records.append(CODEC.decode(message.value()))
        return records
    finally:
        consumer.close()


@pytest.fixture
def topics(kafka_settings: Settings) -> Settings:
    create_topics(kafka_settings)
    return kafka_settings


@pytest.fixture
def running_worker(topics: Settings) -> Iterator[ShadowWorker]:
    def model(features: dict[str, Any]) -> str:
        if features["a"] < 0:
            raise ValueError(f"negative a={features['a']}")
        return "yes" if features["a"] > 1 else "no"

    worker = ShadowWorker(topics, model, "v2", config=WorkerConfig(name="churn", status_every=0))
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    yield worker
    stop.set()
    thread.join(30)
    assert not thread.is_alive()


def test_model_errors_and_dead_letters(topics: Settings, running_worker: ShadowWorker) -> None:
    def item(request_id: str, **numeric: float) -> tuple[bytes, bytes]:
        record = ModelInput(request_id, "churn", 0, numeric, segments={"country": "DE"})
        return request_id.encode(), CODEC.encode(record)

    good = [item(f"ok{i}", a=float(i)) for i in range(5)]
    raising = [item(f"bad{i}", a=-1.0 - i) for i in range(3)]
    prediction = Prediction("p1", "churn", "v1", Role.LIVE, 0, value="no")
    junk = [
        (b"g1", b"\x00\x00\x00"),
        (b"g2", b"definitely not avro"),
        (b"nan", CODEC.encode(ModelInput("nan", "churn", 0, {"a": float("nan")}))),
        (b"p1", CODEC.encode(prediction)),
    ]
    places = produce(topics, [*good, *raising, *junk])

    predictions = read_records(topics, topics.topics.shadow_predictions, want=8)
    letters = read_records(topics, topics.topics.dlq, want=4)

    assert all(isinstance(p, Prediction) for p in predictions)
    by_id = {p.request_id: p for p in predictions if isinstance(p, Prediction)}
    assert sorted(by_id) == sorted(k.decode() for k, _ in good + raising)
    assert {i for i, p in by_id.items() if p.error} == {"bad0", "bad1", "bad2"}
    assert by_id["bad1"].error == "ValueError: negative a=-2.0" and by_id["bad1"].value is None
    assert [by_id[f"ok{i}"].value for i in range(5)] == ["no", "no", "yes", "yes", "yes"]
    ok = by_id["ok3"]
    assert (ok.role, ok.version, ok.model, dict(ok.segments)) == (
        Role.SHADOW, "v2", "churn", {"country": "DE"},
    )  # fmt: skip
    assert ok.dedup_key == ("ok3", "churn", "v2", "SHADOW")

    assert all(isinstance(d, DeadLetter) for d in letters)
    dead = {d.key: d for d in letters if isinstance(d, DeadLetter)}
    assert set(dead) == {b"g1", b"g2", b"nan", b"p1"}
    for (key, value), place in zip(junk, places[-4:], strict=True):
        letter = dead[key]
        assert (letter.source_partition, letter.source_offset) == place
        assert letter.source_topic == topics.topics.inputs and letter.value == value
        assert letter.component == "worker"
    assert dead[b"g2"].error_type == "undecodable"
    assert dead[b"nan"].error_type == "nan_features"
    assert dead[b"p1"].error_type == "wrong_record_type"

    deadline = time.monotonic() + 10
    metrics = running_worker.metrics
    while metrics.dead_lettered < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (metrics.consumed, metrics.produced, metrics.errors, metrics.dead_lettered) == (
        12, 8, 3, 4,
    )  # fmt: skip


def test_missing_topics_tell_to_create_them(kafka_settings: Settings) -> None:
    args = ["worker", "--model", "math:sqrt", "--version", "v1",
            "--bootstrap", kafka_settings.kafka_bootstrap,
            "--topic-prefix", kafka_settings.topic_prefix]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "missing topics" in result.output
    assert "shadow-eval topics create" in result.output
    assert kafka_settings.topics.inputs in result.output
