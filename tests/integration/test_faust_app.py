"""examples/faust_app.py as a real faust worker on the real broker: every request event is
answered, published to shadow-eval under the event's own request id, and labelled later."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from streams.codec import Codec
from streams.kafka.config import client_config
from streams.records import GroundTruth, ModelInput, Prediction, Record
from streams.settings import Settings
from tests.integration.helpers import create_topics, every_record
from tests.integration.test_hook_fastapi import load_example

ROOT = Path(__file__).resolve().parents[2]
REQUESTS = 40


def loan(i: int) -> dict[str, Any]:
    return {"income": 2000.0 + 100 * i, "debt": 50.0 * i, "late_payments": i % 4, "region": "n"}


def send_events(settings: Settings, topic: str, events: list[dict[str, Any]]) -> None:
    producer = Producer(client_config(settings))
    for event in events:
        producer.produce(topic, key=event["request_id"], value=json.dumps(event).encode())
    assert producer.flush(30) == 0


def shadow_records(
    settings: Settings, expected: int, worker: subprocess.Popen[bytes], timeout: float = 40.0
) -> list[Record]:
    """The decoded records of shadow-eval's topics, once ``expected`` of them are there (or
    the worker has exited)."""
    codec = Codec()
    deadline = time.monotonic() + timeout
    while True:
        records = [codec.decode(value, topic=topic) for topic, value in every_record(settings)]
        if len(records) >= expected or time.monotonic() > deadline or worker.poll() is not None:
            return records
        time.sleep(1.0)


def app_values(settings: Settings, topic: str) -> list[dict[str, Any]]:
    """The JSON values on one of the app's own topics."""
    consumer = Consumer(client_config(settings, **{"group.id": f"read-{topic}"}))
    try:
        consumer.assign(
            [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(settings.partitions)]
        )
        out: list[dict[str, Any]] = []
        quiet_until = time.monotonic() + 3.0
        while time.monotonic() < quiet_until:
            for message in consumer.consume(500, timeout=0.5):
                if message.error() is None:
                    out.append(json.loads(message.value()))
                    quiet_until = time.monotonic() + 1.0
        return out
    finally:
        consumer.close()


def test_faust_agent_publishes_under_the_event_request_id(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    prefix = kafka_settings.topic_prefix
    create_topics(kafka_settings)
    create_topics(
        kafka_settings, [f"{prefix}.app.{t}" for t in ("requests", "decisions", "outcomes")]
    )
    requests = [{"request_id": f"loan-{i}", "features": loan(i)} for i in range(REQUESTS)]
    send_events(kafka_settings, f"{prefix}.app.requests", requests)

    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SHADOW_KAFKA_BOOTSTRAP": kafka_settings.kafka_bootstrap,
        "SHADOW_TOPIC_PREFIX": prefix,
    }
    with (tmp_path / "faust.log").open("w") as log_file:
        worker = subprocess.Popen(
            [sys.executable, str(ROOT / "examples" / "faust_app.py"), "worker", "-l", "warn"],
            cwd=tmp_path,  # faust keeps its data directory there
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
        try:
            served = shadow_records(kafka_settings, 2 * REQUESTS, worker)
            outcomes = [
                {"request_id": f"loan-{i}", "defaulted": i % 5 == 0} for i in range(REQUESTS)
            ]
            send_events(kafka_settings, f"{prefix}.app.outcomes", outcomes)
            records = shadow_records(kafka_settings, 3 * REQUESTS, worker)
        finally:
            worker.send_signal(signal.SIGTERM)  # faust stops its agents; the hook flushes at exit
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(10)
    log = (tmp_path / "faust.log").read_text()
    assert len(served) >= 2 * REQUESTS, f"{len(served)} records before the labels; log:\n{log}"

    score = load_example("faust_app").score
    inputs = {r.request_id: r for r in records if isinstance(r, ModelInput)}
    predictions = {r.request_id: r for r in records if isinstance(r, Prediction)}
    labels = {r.request_id: r for r in records if isinstance(r, GroundTruth)}
    assert len(records) == 3 * REQUESTS, "a record was lost or published twice"
    ids = {f"loan-{i}" for i in range(REQUESTS)}
    assert set(inputs) == set(predictions) == set(labels) == ids
    for i in range(REQUESTS):
        rid = f"loan-{i}"
        assert inputs[rid].numeric["debt"] == 50.0 * i
        assert predictions[rid].model == "loan-default"
        assert predictions[rid].value == score(loan(i))
        assert labels[rid].value == (1.0 if i % 5 == 0 else 0.0)
    decisions = app_values(kafka_settings, f"{prefix}.app.decisions")
    assert sorted(d["request_id"] for d in decisions) == sorted(ids)
