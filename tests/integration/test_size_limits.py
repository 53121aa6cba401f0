"""Oversized records: a value near the broker's limit on an input topic is dead-lettered
(a prefix, its size and its SHA-256 digest, never the whole value) and join stage 1 keeps
running; the good records around it are paired and labelled exactly."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from confluent_kafka import Producer

from streams.kafka.config import client_config
from streams.records import DeadLetter
from streams.settings import Settings
from streams.topics import create_topics
from tests.integration.join_helpers import Expected, JoinProcess, Outputs
from tests.integration.test_hook import consume
from tests.integration.test_join_faults import EXPERIMENT, _produce

OVERSIZED = 999_900


def test_an_oversized_live_value_is_dead_lettered_and_stage_1_keeps_running(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    settings = kafka_settings.model_copy(update={"partitions": 3})
    create_topics(settings)
    _produce(settings, 0, 100)
    garbage = os.urandom(OVERSIZED)
    producer = Producer(client_config(settings, **{"message.max.bytes": 1_040_000}))
    producer.produce(settings.topics.live_predictions, garbage, b"big-key")
    assert producer.flush(30) == 0
    _produce(settings, 100, 100)
    experiments = tmp_path / "experiments.toml"
    experiments.write_text(EXPERIMENT)
    join = JoinProcess(settings, experiments, tmp_path / "join.log")
    outputs = Outputs(settings)
    try:
        outputs.wait_for(Expected(paired=200, labelled=200), timeout=120, names=("churn-v2",))
        running = join.process.poll() is None
    finally:
        join.stop()
        outputs.close()
    log = (tmp_path / "join.log").read_text()
    assert running, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    letters = [
        r.record
        for r in consume(settings, [settings.topics.dlq], 1)
        if isinstance(r.record, DeadLetter)
    ]
    assert len(letters) == 1
    letter = letters[0]
    assert letter.error_type == "too_large" and letter.key == b"big-key"
    assert letter.source_topic == settings.topics.live_predictions
    assert letter.value is not None and garbage.startswith(letter.value)
    assert len(letter.value) < 10_000
    assert f"{OVERSIZED} bytes" in letter.reason
    assert hashlib.sha256(garbage).hexdigest() in letter.reason
