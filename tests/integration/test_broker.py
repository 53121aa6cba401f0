"""The local Kafka broker works: clients round-trip records, the CLI drives it, errors are clear."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from confluent_kafka import Consumer, Producer

import streams.topics
from streams.broker import BrokerError, LocalBroker, provision_kafka
from streams.broker.config import free_port
from streams.settings import Settings, load_settings
from tests.integration.helpers import broker_answers, create_topics

CLI = [str(Path(sys.executable).with_name("shadow-eval")), "kafka"]
RECORDS = [(f"req-{i}".encode(), f"value-{i}".encode()) for i in range(20)]


def _produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for key, value in records:
        producer.produce(topic, value=value, key=key)
    assert producer.flush(30) == 0


def _consume(bootstrap: str, topic: str, count: int) -> list[tuple[bytes, bytes]]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{topic}.reader",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    got: list[tuple[bytes, bytes]] = []
    try:
        for _ in range(300):
            message = consumer.poll(0.2)
            if message is None:
                if len(got) >= count:
                    break
                continue
            assert message.error() is None, message.error()
            got.append((message.key(), message.value()))
    finally:
        consumer.close()
    return got


def test_confluent_kafka_round_trip(kafka_settings: Settings) -> None:
    (topic,) = create_topics(kafka_settings, [kafka_settings.topics.inputs])
    _produce(kafka_settings.kafka_bootstrap, topic, RECORDS)

    got = _consume(kafka_settings.kafka_bootstrap, topic, len(RECORDS))

    assert sorted(got) == sorted(RECORDS)


def test_aiokafka_round_trip(kafka_settings: Settings) -> None:
    (topic,) = create_topics(kafka_settings, [kafka_settings.topics.alerts])

    async def round_trip() -> list[tuple[bytes | None, bytes | None]]:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_settings.kafka_bootstrap)
        await producer.start()
        try:
            for key, value in RECORDS:
                await producer.send_and_wait(topic, value, key=key)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_settings.kafka_bootstrap,
            group_id=f"{topic}.reader",
            auto_offset_reset="earliest",
        )
        await consumer.start()
        got: list[tuple[bytes | None, bytes | None]] = []
        try:
            while len(got) < len(RECORDS):
                batch = await asyncio.wait_for(consumer.getmany(timeout_ms=500), 30)
                got.extend((m.key, m.value) for ms in batch.values() for m in ms)
        finally:
            await consumer.stop()
        return got

    got = asyncio.run(round_trip())

    assert sorted(got) == sorted(RECORDS)  # type: ignore[arg-type]


def test_both_clients_see_each_others_records(kafka_settings: Settings) -> None:
    (topic,) = create_topics(kafka_settings, [kafka_settings.topics.metrics], partitions=1)
    _produce(kafka_settings.kafka_bootstrap, topic, RECORDS[:3])

    async def read() -> list[tuple[bytes | None, bytes | None]]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_settings.kafka_bootstrap,
            auto_offset_reset="earliest",
            group_id=None,
        )
        await consumer.start()
        try:
            batch = await consumer.getmany(timeout_ms=10_000, max_records=3)
            return [(m.key, m.value) for ms in batch.values() for m in ms]
        finally:
            await consumer.stop()

    assert asyncio.run(read()) == RECORDS[:3]


# -- the CLI, on its own data directory ---------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL
    )


@pytest.fixture
def cli_data_dir(tmp_path: Path) -> Iterator[Path]:
    data_dir = tmp_path / "cli-broker"
    yield data_dir
    LocalBroker(load_settings(), data_dir).stop()  # whatever the test did


def test_cli_start_status_stop(cli_data_dir: Path) -> None:
    port = free_port()

    started = _cli("start", "--port", str(port), "--data-dir", str(cli_data_dir))
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == f"127.0.0.1:{port}"
    assert "waiting for broker on" in started.stderr
    assert (cli_data_dir / "bootstrap").read_text().strip() == f"127.0.0.1:{port}"
    assert broker_answers(f"127.0.0.1:{port}") is None

    status = _cli("status", "--data-dir", str(cli_data_dir), "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["running"] is True
    assert report["bootstrap"] == f"127.0.0.1:{port}"
    assert report["version"].startswith("4.")

    again = _cli("start", "--data-dir", str(cli_data_dir))  # idempotent
    assert again.returncode == 0 and again.stdout.strip() == f"127.0.0.1:{port}"

    stopped = _cli("stop", "--data-dir", str(cli_data_dir))
    assert stopped.returncode == 0 and stopped.stdout.strip() == "stopped"
    assert broker_answers(f"127.0.0.1:{port}", timeout=2) is not None
    assert not (cli_data_dir / "bootstrap").exists()

    status = _cli("status", "--data-dir", str(cli_data_dir))
    assert status.returncode == 3
    assert status.stdout.startswith("stopped")


def test_cli_names_a_taken_port(cli_data_dir: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]

        result = _cli("start", "--port", str(port), "--data-dir", str(cli_data_dir))

    assert result.returncode == 1
    assert f"port {port} (broker) is already in use" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (cli_data_dir / "broker.pid").exists()


# -- errors and restarts through the Python API -------------------------------------------


def test_broker_exiting_during_startup_shows_the_log(
    broker_factory: Callable[..., LocalBroker],
) -> None:
    broker = broker_factory()
    broker.log_dir.mkdir(parents=True)
    (broker.log_dir / "meta.properties").write_text(
        "version=1\nnode.id=99\ncluster.id=AAAAAAAAAAAAAAAAAAAAAA\n"
    )

    with pytest.raises(BrokerError, match="exited during startup") as raised:
        broker.start(timeout=60)

    assert "Stored node id 99" in raised.value.log_tail
    assert str(broker.log_path) in str(raised.value)
    assert not broker.status().running


def test_killed_broker_comes_back_on_the_same_port_with_its_data(
    broker_factory: Callable[..., LocalBroker],
) -> None:
    broker = broker_factory()
    bootstrap = broker.start()
    _produce(bootstrap, "survivor", RECORDS[:5])

    broker.kill()
    assert not broker.status().running
    assert broker_answers(bootstrap, timeout=1) is not None

    assert broker.start() == bootstrap
    # Usable at once: topics created right after the restart are there when created.
    settings = load_settings(kafka_bootstrap=bootstrap, topic_prefix="restarted")
    assert len(streams.topics.create_topics(settings)) == len(settings.topics.all)
    assert sorted(_consume(bootstrap, "survivor", 5)) == sorted(RECORDS[:5])


def test_maven_failure_shows_its_output(tmp_path: Path) -> None:
    pom = tmp_path / "pom.xml"
    pom.write_text("<project><modelVersion>4.0.0</modelVersion></project>")

    with pytest.raises(BrokerError, match="Maven failed") as raised:
        provision_kafka(tmp_path / "cache", pom=pom)

    assert raised.value.log_tail
    assert not (tmp_path / "cache" / "kafka" / "VERSION").exists()
