"""The producer hook on a real broker: every record arrives, decodes to what was sent,
and lands on the partition the Java client (and aiokafka/faust) would choose."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka import Consumer
from prometheus_client import CollectorRegistry

from streams.codec import Codec
from streams.hook import ShadowPublisher, shadow_predict
from streams.kafka.config import client_config
from streams.records import GroundTruth, ModelInput, Prediction, Record, Role
from streams.settings import Settings
from tests.integration.helpers import create_topics

TS = 1_700_000_000_000


@dataclass(frozen=True)
class Consumed:
    topic: str
    partition: int
    key: bytes | None
    record: Record


def consume(
    settings: Settings, topics: Iterable[str], count: int, timeout: float = 30.0
) -> list[Consumed]:
    """Read ``count`` records from the start of ``topics`` (fails if fewer arrive), then
    keep reading one more second so that extra (duplicate) records would be seen too."""
    consumer = Consumer(
        client_config(
            settings,
            **{
                "group.id": f"test-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            },
        )
    )
    consumer.subscribe(list(topics))
    codec = Codec()
    out: list[Consumed] = []
    deadline = time.monotonic() + timeout
    grace: float | None = None
    try:
        while time.monotonic() < deadline:
            if len(out) >= count:
                grace = grace or time.monotonic() + 1.0
                if time.monotonic() > grace:
                    break
            msg = consumer.poll(0.2)
            if msg is None or msg.error() is not None:
                continue
            record = codec.decode(msg.value(), topic=msg.topic(), offset=msg.offset())
            out.append(Consumed(msg.topic(), msg.partition(), msg.key(), record))
    finally:
        consumer.close()
    assert len(out) >= count, f"only {len(out)} of {count} records arrived"
    return out


def java_partition(key: bytes, partitions: int) -> int:
    """The partition the Java client, aiokafka and faust give a keyed record."""
    return int(DefaultPartitioner()(key, list(range(partitions)), list(range(partitions))))


def make_features(i: int) -> dict[str, Any]:
    features: dict[str, Any] = {f"n{j}": float(i * 100 + j) / 7 for j in range(20)}
    features.update({f"c{j}": f"cat{(i + j) % 3}" for j in range(5)})
    return features


@pytest.fixture
def publisher(kafka_settings: Settings) -> Any:
    create_topics(kafka_settings)
    with ShadowPublisher(
        kafka_settings,
        model="churn",
        version="v1",
        registry=CollectorRegistry(),
        close_at_exit=False,
    ) as pub:
        yield pub


def test_every_record_arrives_and_decodes_to_what_was_sent(
    publisher: ShadowPublisher, kafka_settings: Settings
) -> None:
    expected: list[tuple[str, Record]] = []
    topics = kafka_settings.topics
    # Regression, with ~25 mixed features.
    for i in range(40):
        features = make_features(i)
        rid = publisher.publish(
            features, i / 3, latency_ms=1.25, segments={"country": "de"}, timestamp_ms=TS + i
        )
        numeric = {k: v for k, v in features.items() if isinstance(v, float)}
        categorical = {k: v for k, v in features.items() if isinstance(v, str)}
        expected.append(
            (
                topics.inputs,
                ModelInput(rid, "churn", TS + i, numeric, categorical, {"country": "de"}),
            )
        )
        expected.append(
            (
                topics.live_predictions,
                Prediction(
                    rid,
                    "churn",
                    "v1",
                    Role.LIVE,
                    TS + i,
                    i / 3,
                    None,
                    1.25,
                    None,
                    {"country": "de"},
                ),
            )
        )
    # Classification with probabilities; int / numpy / bool labels travel as text.
    for i, label in enumerate(["yes", 1, np.int64(0), True]):
        rid = f"cls-{i}"
        publisher.publish(
            {"age": 30 + i}, label, request_id=rid, probabilities={"yes": 0.75, "no": 0.25},
            model="spam", version="v7", timestamp_ms=TS,
        )  # fmt: skip
        expected.append((topics.inputs, ModelInput(rid, "spam", TS, {"age": 30.0 + i}, {}, {})))
        expected.append(
            (
                topics.live_predictions,
                Prediction(rid, "spam", "v7", Role.LIVE, TS, str(label), {"yes": 0.75, "no": 0.25}),
            )
        )
    # Free-form nested inputs.
    nested = {"tags": ["a", "b"], "address": {"city": "Lyon", "zip": 69001}, "note": None}
    rid = publisher.publish({"rooms": 3, "city": "Lyon", **nested}, 265000.0, timestamp_ms=TS)
    expected.append(
        (topics.inputs, ModelInput(rid, "churn", TS, {"rooms": 3.0}, {"city": "Lyon"}, {}, nested))
    )
    expected.append(
        (topics.live_predictions, Prediction(rid, "churn", "v1", Role.LIVE, TS, 265000.0))
    )
    # Labels, from wherever they are learned.
    for i in range(10):
        assert publisher.label(f"cls-{i % 4}", "yes", model="spam", timestamp_ms=TS + 1)
        expected.append((topics.ground_truth, GroundTruth(f"cls-{i % 4}", "spam", TS + 1, "yes")))

    assert publisher.flush(30) == 0
    counters = publisher.counters
    assert counters.published == counters.delivered == len(expected)
    assert counters.dropped == counters.failed == counters.unencodable == counters.errors == 0

    got = consume(
        kafka_settings, [topics.inputs, topics.live_predictions, topics.ground_truth], len(expected)
    )
    assert len(got) == len(expected)  # nothing missing, nothing twice
    assert sorted(map(repr, ((c.topic, c.record) for c in got))) == sorted(map(repr, expected))
    # Keyed by request id, on the partition the Java client / aiokafka would choose.
    for c in got:
        assert c.key == c.record.request_id.encode()  # type: ignore[union-attr]
        assert c.partition == java_partition(c.key, kafka_settings.partitions)


def test_wrapped_model_failure_is_recorded(
    publisher: ShadowPublisher, kafka_settings: Settings
) -> None:
    @shadow_predict(
        publisher, request_id=lambda features: features["id"], segments={"device": "ios"}
    )
    def predict(features: dict[str, Any]) -> float:
        if features["x"] < 0:
            raise ValueError(f"x must be >= 0, got {features['x']}")
        return features["x"] * 2.0

    assert predict({"id": "ok-1", "x": 2.0}) == 4.0
    with pytest.raises(ValueError, match="x must be >= 0"):
        predict({"id": "bad-1", "x": -1.0})
    assert publisher.flush(30) == 0

    topics = kafka_settings.topics
    got = consume(kafka_settings, [topics.live_predictions], 2)
    by_id = {c.record.request_id: c.record for c in got}  # type: ignore[union-attr]
    ok, bad = by_id["ok-1"], by_id["bad-1"]
    assert isinstance(ok, Prediction) and isinstance(bad, Prediction)
    assert (ok.value, ok.error, ok.segments) == (4.0, None, {"device": "ios"})
    assert (bad.value, bad.error) == (None, "ValueError: x must be >= 0, got -1.0")
    assert bad.latency_ms >= 0.0 and bad.role is Role.LIVE
