"""The join under faults: a broker restart mid-stream (the transaction in flight is redone,
counts stay exact) and bad records (dead-lettered with their offsets; the stream goes on)."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Producer

from streams.broker import LocalBroker
from streams.broker.config import free_port
from streams.codec import Codec
from streams.kafka.config import client_config
from streams.records import DeadLetter, Decision, Prediction, Role, Verdict
from streams.settings import Settings, load_settings
from streams.synthetic import CandidateSpec, classification_requests
from streams.topics import create_topics
from tests.integration.join_helpers import Expected, JoinProcess, Outputs
from tests.integration.test_hook import consume

EXPERIMENT = """
[join]
pair_ttl_s = 3600
label_ttl_s = 86400
snapshot_every_s = 0.2

[[experiments]]
name = "churn-v2"
model = "churn"
live_version = "v1"
candidate = "v2"
task = "binary"
"""
REQUESTS = 8000
TRUNCATED = Prediction("r1", "churn", "v2", Role.SHADOW, 0, "1")
VERDICT = Verdict("churn-v2", Decision.CONTINUE, "not yet", 0)


def _produce(settings: Settings, first: int, count: int) -> None:
    """Live, candidate and label of requests [first, first + count) of one seeded stream."""
    codec = Codec()
    producer = Producer(client_config(settings, partitioner="murmur2_random", **{"linger.ms": 5}))
    requests = classification_requests(
        first + count, CandidateSpec("v1", 0.9), [CandidateSpec("v2", 0.85)], seed=5
    )
    for index, request in enumerate(requests):
        if index < first:
            continue
        key = request.live.request_id.encode()
        producer.produce(settings.topics.live_predictions, codec.encode(request.live), key)
        candidate = codec.encode(request.candidates[0])
        producer.produce(settings.topics.shadow_predictions, candidate, key)
        producer.produce(settings.topics.ground_truth, codec.encode(request.label), key)
        producer.poll(0)
    assert producer.flush(60) == 0


def test_broker_restart_mid_stream_keeps_counts_exact(
    broker_factory: Callable[..., LocalBroker], tmp_path: Path
) -> None:
    broker = broker_factory()
    broker.start(timeout=120)
    settings = load_settings(kafka_bootstrap=broker.bootstrap, topic_prefix="faults", partitions=3)
    create_topics(settings)
    half = REQUESTS * 3 // 4
    _produce(settings, 0, half)
    experiments = tmp_path / "experiments.toml"
    experiments.write_text(EXPERIMENT)
    join = JoinProcess(settings, experiments, tmp_path / "join.log", "--batch-size", "20")
    outputs = Outputs(settings)
    try:
        deadline = time.monotonic() + 90
        while outputs.counts("churn-v2").get("paired", 0) == 0:
            assert time.monotonic() < deadline, "the join made no progress"
            outputs.poll(0.2)
        broker.stop()  # mid-stream: small transactions, one of them open
        time.sleep(2)
        broker.start(timeout=120)
        _produce(settings, half, REQUESTS - half)
        outputs.wait_for(
            Expected(paired=REQUESTS, labelled=REQUESTS), timeout=180, names=("churn-v2",)
        )
    finally:
        join.stop()
        outputs.close()
    assert join.process.returncode == 0, (tmp_path / "join.log").read_text()[-3000:]
    log = (tmp_path / "join.log").read_text()
    assert "Traceback" not in log, log[-3000:]


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def test_bad_records_go_to_the_dead_letter_topic_and_the_stream_goes_on(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    settings = kafka_settings.model_copy(update={"partitions": 3})
    create_topics(settings)
    codec = Codec()
    producer = Producer(client_config(settings))
    garbage = [
        (settings.topics.live_predictions, b"not avro at all", "undecodable"),
        (settings.topics.shadow_predictions, codec.encode(TRUNCATED)[:9], "undecodable"),
        (settings.topics.ground_truth, codec.encode(VERDICT), "wrong_schema"),
    ]
    for topic, value, _ in garbage:
        producer.produce(topic, value, b"bad-key")
    assert producer.flush(30) == 0
    _produce(settings, 0, 200)
    experiments = tmp_path / "experiments.toml"
    experiments.write_text(EXPERIMENT)
    web, metrics = free_port(), free_port()
    join = JoinProcess(
        settings,
        experiments,
        tmp_path / "join.log",
        *("--web-port", str(web), "--metrics-port", str(metrics)),
    )
    outputs = Outputs(settings)
    try:
        outputs.wait_for(Expected(paired=200, labelled=200), timeout=120, names=("churn-v2",))
        verdicts = json.loads(_get(f"http://127.0.0.1:{web}/verdicts/"))
        exposition = _get(f"http://127.0.0.1:{metrics}/metrics")
    finally:
        join.stop()
        outputs.close()
    assert verdicts["churn-v2"]["counts"]["labelled"] == 200
    assert verdicts["churn-v2"]["decision"] in {"promote", "reject", "continue"}
    assert 'shadow_join_dead_lettered_total{error_type="undecodable"} 2.0' in exposition
    assert 'shadow_join_dead_lettered_total{error_type="wrong_schema"} 1.0' in exposition
    letters = [
        r.record
        for r in consume(settings, [settings.topics.dlq], len(garbage))
        if isinstance(r.record, DeadLetter)
    ]
    assert sorted((d.source_topic, d.error_type) for d in letters) == sorted(
        (topic, error_type) for topic, _, error_type in garbage
    )
    for letter in letters:
        assert letter.source_offset == 0 and letter.key == b"bad-key"
        assert letter.value in {value for _, value, _ in garbage}
        assert letter.reason
