"""Client configurations: security reaches every role, overrides win, roles' keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.kafka.config import (
    admin_config,
    base_config,
    client_config,
    group_config,
    librdkafka_logger,
    producer_config,
    reader_config,
    transactional_config,
)
from streams.settings import Settings

SECURE = Settings(
    kafka_bootstrap="k1:9093,k2:9093",
    security_protocol="SASL_SSL",
    sasl_mechanism="SCRAM-SHA-512",
    sasl_username="svc",
    sasl_password="s3cret",  # type: ignore[arg-type]
    ssl_cafile=Path("/ca.pem"),
)
ROLES = {
    "base": lambda s: base_config(s),
    "producer": lambda s: producer_config(s),
    "transactional": lambda s: transactional_config(s, "g", timeout_ms=10_000),
    "group": lambda s: group_config(s, "g"),
    "reader": lambda s: reader_config(s, "status"),
    "admin": lambda s: admin_config(s, quiet=True),
}


@pytest.mark.parametrize("role", sorted(ROLES))
def test_security_settings_reach_every_client(role: str) -> None:
    config = ROLES[role](SECURE)
    assert config["bootstrap.servers"] == "k1:9093,k2:9093"
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert (config["sasl.username"], config["sasl.password"]) == ("svc", "s3cret")
    assert config["ssl.ca.location"] == "/ca.pem"


def test_client_config_is_the_base_config_with_keyword_overrides() -> None:
    assert client_config(SECURE, acks="all") == base_config(SECURE, overrides={"acks": "all"})


def test_overrides_win_over_role_defaults() -> None:
    config = producer_config(Settings(), overrides={"linger.ms": 50, "partitioner": "random"})
    assert (config["linger.ms"], config["partitioner"]) == (50, "random")


def test_producers_partition_as_the_java_client() -> None:
    assert producer_config(Settings())["partitioner"] == "murmur2_random"
    assert transactional_config(Settings(), "g", timeout_ms=1)["partitioner"] == "murmur2_random"


def test_transactional_ids_are_unique_per_client_of_a_group() -> None:
    first = transactional_config(Settings(), "join", timeout_ms=10_000)
    second = transactional_config(Settings(), "join", timeout_ms=10_000)
    assert first["transactional.id"].startswith("join-")
    assert first["transactional.id"] != second["transactional.id"]
    assert first["transaction.timeout.ms"] == 10_000


def test_join_groups_read_committed_with_manual_offsets_and_eof_events() -> None:
    config = group_config(Settings(), "app-shadow")
    assert config["group.id"] == "app-shadow"
    assert config["isolation.level"] == "read_committed"
    assert config["enable.auto.commit"] is False
    assert config["enable.partition.eof"] is True
    assert config["partition.assignment.strategy"] == "range"
    assert config["auto.offset.reset"] == "error"  # streams.kafka.offset_loss handles it


def test_readers_join_no_shared_group() -> None:
    first, second = reader_config(Settings(), "alerts"), reader_config(Settings(), "alerts")
    assert first["group.id"].startswith("shadow-eval-alerts-")
    assert first["group.id"] != second["group.id"]
    assert first["enable.auto.commit"] is False


def test_one_rate_limited_logger_per_name() -> None:
    assert librdkafka_logger("a.b") is librdkafka_logger("a.b")
    assert group_config(Settings(), "g", logs="a.b")["logger"] is librdkafka_logger("a.b")
