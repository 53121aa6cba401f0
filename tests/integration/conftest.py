"""Fixtures giving integration tests a real Kafka broker and their own topics.

``kafka_bootstrap`` finds a broker in this order:

1. an existing cluster named by ``SHADOW_KAFKA_BOOTSTRAP`` (read through ``Settings``);
2. testcontainers' ``KafkaContainer`` when a Docker engine answers;
3. the project's local JVM broker (``streams.broker.LocalBroker``), provisioned from
   Maven Central on first use and started in a temporary data directory.

If none works the tests fail with the reason; they are never skipped.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.broker import BrokerError, LocalBroker
from streams.settings import Settings, load_settings
from tests.integration.helpers import broker_answers, delete_topics

DOCKER_PROBE_TIMEOUT = 2.0


def _docker_answers() -> bool:
    """Whether a Docker engine answers ``GET /_ping`` within a short timeout.

    A raw socket rather than the docker SDK: its failed probe leaks a socket, which
    surfaces later as a ResourceWarning (warnings are errors here).
    """
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")  # the docker CLI's own
    scheme, _, address = host.partition("://")
    if scheme == "unix":
        family, target = socket.AF_UNIX, address
    elif scheme == "tcp":
        name, _, port = address.rpartition(":")
        family, target = socket.AF_INET, (name, int(port))
    else:
        return False
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(DOCKER_PROBE_TIMEOUT)
            sock.connect(target)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return sock.recv(64).split(b" ")[1:2] == [b"200"]
    except (OSError, ValueError):
        return False


def _from_environment() -> str | None:
    settings = load_settings()
    if "kafka_bootstrap" not in settings.model_fields_set:
        return None
    reason = broker_answers(settings.kafka_bootstrap)
    if reason is not None:
        pytest.fail(f"SHADOW_KAFKA_BOOTSTRAP is set but its cluster is down: {reason}", False)
    return settings.kafka_bootstrap


def _from_testcontainers() -> Iterator[str]:
    from testcontainers.kafka import KafkaContainer

    with KafkaContainer().with_kraft() as container:
        yield container.get_bootstrap_server()


def _from_local_broker(data_dir: Path) -> Iterator[str]:
    broker = LocalBroker(load_settings(), data_dir, die_with_parent=True)
    try:
        bootstrap = broker.start(timeout=120)
    except BrokerError as exc:
        pytest.fail(f"cannot start the local Kafka broker for the tests:\n{exc}", False)
    try:
        yield bootstrap
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a real Kafka broker shared by the whole session."""
    existing = _from_environment()
    if existing is not None:
        yield existing
    elif _docker_answers():
        yield from _from_testcontainers()
    else:
        yield from _from_local_broker(tmp_path_factory.mktemp("kafka"))


@pytest.fixture
def kafka_settings(kafka_bootstrap: str) -> Iterator[Settings]:
    """``Settings`` on the session broker with a unique ``topic_prefix`` (``t<8 hex>``).

    Topics are not created (use ``tests.integration.helpers.create_topics``); those with
    the prefix are deleted after the test.
    """
    settings = load_settings(
        kafka_bootstrap=kafka_bootstrap, topic_prefix=f"t{uuid.uuid4().hex[:8]}"
    )
    yield settings
    delete_topics(settings)


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[Callable[..., LocalBroker]]:
    """Make private ``LocalBroker``s (not started) for tests that stop or kill a broker.

    Each gets its own data directory under ``tmp_path``; all are stopped after the test.
    """
    made: list[LocalBroker] = []

    def make(**kwargs: Any) -> LocalBroker:
        data_dir = tmp_path / f"broker{len(made)}"
        broker = LocalBroker(load_settings(), data_dir, die_with_parent=True, **kwargs)
        made.append(broker)
        return broker

    yield make
    for broker in made:
        broker.stop()


@pytest.fixture(scope="session")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A secured local broker shared by the session: SASL_SSL (SCRAM-SHA-512) on
    ``bootstrap``, mutual TLS on ``ssl_bootstrap``, ACLs, an admin super user and one
    principal per role (``streams.broker.secure``). Always the project's own JVM broker:
    its CA and users are what the tests need to know."""
    broker = LocalBroker(
        load_settings(), tmp_path_factory.mktemp("kafka-secure"), die_with_parent=True, secure=True
    )
    try:
        broker.start(timeout=120)
    except BrokerError as exc:
        pytest.fail(f"cannot start the secured local Kafka broker for the tests:\n{exc}", False)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def schema_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real Schema Registry (Apicurio, Confluent-compatible API) shared by the
    session, built from Maven Central on first use (``streams.broker.registry``)."""
    from streams.broker.registry import SchemaRegistryServer

    server = SchemaRegistryServer(load_settings().cache_dir, tmp_path_factory.mktemp("registry"))
    try:
        url = server.start(timeout=600)  # the first run builds it with Maven
    except BrokerError as exc:
        pytest.fail(f"cannot start the local Schema Registry for the tests:\n{exc}", False)
    try:
        yield url
    finally:
        server.stop()
