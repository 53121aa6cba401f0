"""What a running local broker or cluster says: does it answer, who leads what."""

from __future__ import annotations

import logging
import socket
from typing import Any

from confluent_kafka import KafkaException

from streams.broker.errors import BrokerError
from streams.kafka.clients import CONFLUENT

__all__ = ["answers", "coordinator_partition", "metadata"]

logger = logging.getLogger("streams.broker")


def answers(client: dict[str, Any], timeout: float) -> bool:
    """Whether the broker of ``client`` answers a metadata request within ``timeout`` s."""
    host, _, port = client["bootstrap.servers"].split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=min(timeout, 1.0)):
            pass
    except OSError:
        return False
    try:
        return bool(metadata(client, timeout).brokers)
    except BrokerError:
        return False


def metadata(client: dict[str, Any], timeout: float, topic: str | None = None) -> Any:
    """The cluster's metadata (``ClusterMetadata``), of ``topic`` only when given.

    Raises
    ------
    BrokerError
        No answer within ``timeout`` seconds.
    """
    admin = CONFLUENT.admin({**client, "logger": logger})
    try:
        return admin.list_topics(topic, timeout=timeout)
    except KafkaException as exc:
        raise BrokerError(f"no metadata from {client['bootstrap.servers']}: {exc}") from exc


def coordinator_partition(key: str, partitions: int) -> int:
    """The partition of ``__transaction_state`` (or ``__consumer_offsets``) whose leader
    coordinates the transactional id (or group) ``key``: Kafka's
    ``Utils.abs(key.hashCode()) % partitions``.

    Examples
    --------
    >>> coordinator_partition("hello", 50)  # "hello".hashCode() == 99162322
    22
    """
    code = 0
    for unit in key.encode("utf-16-be").hex(" ", 2).split():  # Java's UTF-16 code units
        code = (31 * code + int(unit, 16)) & 0xFFFFFFFF
    signed = code - (1 << 32) if code & 0x80000000 else code
    return (0 if signed == -(1 << 31) else abs(signed)) % partitions
