"""``shadow-eval status`` on the real broker: lag of our groups, hit rates, verdicts."""

from __future__ import annotations

import json
import subprocess

from confluent_kafka import Consumer, Producer

from streams.codec import Codec
from streams.demo.processes import shadow_eval_command
from streams.kafka.config import client_config
from streams.records import MetricsSnapshot, ModelInput
from streams.settings import Settings
from streams.status import collect_status
from tests.integration.helpers import create_topics

CODEC = Codec()


def _snapshot(name: str, ts: int, decision: str) -> MetricsSnapshot:
    counts = {"paired": 90, "labelled": 45, "expired_no_shadow": 6, "expired_no_live": 4}
    return MetricsSnapshot(name, "churn", "v1", "v2", ts, counts, (), decision, f"{decision}!")


def _prepare(settings: Settings) -> str:
    """20 inputs (one partition); a worker group that committed 12 of them; two snapshots."""
    create_topics(settings)
    producer = Producer(client_config(settings))
    for i in range(20):
        record = ModelInput(f"r{i}", "churn", i, {"x": float(i)})
        producer.produce(
            settings.topics.inputs, CODEC.encode(record), key=f"r{i}".encode(), partition=0
        )
    for ts, decision in ((1, "continue"), (2, "reject")):
        snapshot = _snapshot("churn-v2", ts, decision)
        producer.produce(settings.topics.metrics, CODEC.encode(snapshot), key=b"churn-v2")
    assert producer.flush(10) == 0
    group = f"shadow-worker.churn.{settings.topic_prefix}"
    consumer = Consumer(
        client_config(
            settings,
            **{"group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False},
        )
    )
    consumer.subscribe([settings.topics.inputs])
    taken = 0
    while taken < 12:
        for message in consumer.consume(12 - taken, timeout=5):
            assert message.error() is None
            taken += 1
            consumer.commit(message, asynchronous=False)
    consumer.close()
    return group


def test_status_shows_lag_hit_rates_and_verdicts(kafka_settings: Settings) -> None:
    group = _prepare(kafka_settings)
    status = collect_status(kafka_settings)
    lags = {g.group: g for g in status.groups}
    assert lags[group].lag == {kafka_settings.topics.inputs: 8}
    assert lags[group].members == 0
    (health,) = status.experiments
    assert (health.experiment, health.decision, health.reason) == ("churn-v2", "reject", "reject!")
    assert health.pair_rate == 0.9 and health.label_rate == 0.5


def _commit_first(settings: Settings, group: str, topic: str) -> None:
    """``group`` reads and commits the first record of ``topic`` (partition 0)."""
    consumer = Consumer(
        client_config(
            settings,
            **{"group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False},
        )
    )
    consumer.subscribe([topic])
    try:
        while not (messages := consumer.consume(1, timeout=5)):
            pass
        assert messages[0].error() is None
        consumer.commit(messages[0], asynchronous=False)
    finally:
        consumer.close()


def test_status_finds_a_join_by_its_group_suffix_whatever_its_app_id(
    kafka_settings: Settings,
) -> None:
    _prepare(kafka_settings)
    prefix = kafka_settings.topic_prefix
    (foreign,) = create_topics(kafka_settings, [f"{prefix}-elsewhere.inputs"])
    producer = Producer(client_config(kafka_settings))
    producer.produce(foreign, b"x", partition=0)
    assert producer.flush(10) == 0
    custom_join = f"billing-eval-{prefix}"  # a join whose app_id has no "join" in it
    _commit_first(kafka_settings, custom_join, kafka_settings.topics.inputs)
    stranger = f"another-app-{prefix}"  # ends like a join group, reads none of our topics
    _commit_first(kafka_settings, stranger, foreign)
    groups = {g.group: g for g in collect_status(kafka_settings).groups}
    assert groups[custom_join].lag == {kafka_settings.topics.inputs: 19}
    assert stranger not in groups


def test_status_cli_json_and_table(kafka_settings: Settings) -> None:
    group = _prepare(kafka_settings)
    common = ["--bootstrap", kafka_settings.kafka_bootstrap,
              "--topic-prefix", kafka_settings.topic_prefix]  # fmt: skip
    done = subprocess.run(
        shadow_eval_command("status", "--json", *common),
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    payload = json.loads(done.stdout)
    (row,) = [g for g in payload["groups"] if g["group"] == group]
    assert row["total"] == 8
    assert payload["experiments"][0]["decision"] == "reject"
    table = subprocess.run(
        shadow_eval_command("status", *common),
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert group in table and "REJECT" in table and "90.0%" in table and "50.0%" in table
    assert "Traceback" not in table


def test_status_of_an_unreachable_broker_is_a_clean_error() -> None:
    done = subprocess.run(
        shadow_eval_command("status", "--bootstrap", "127.0.0.1:1", "--timeout", "2"),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "Error:" in done.stderr and "Traceback" not in done.stderr
