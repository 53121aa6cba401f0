"""A real single-node Apache Kafka 4.x broker for development, tests and the demo.

The jars come from Maven Central once (``provision_kafka``); ``LocalBroker`` runs them
on loopback with the machine's Java; ``LocalCluster`` runs several of them as one
cluster. ``shadow-eval kafka start|stop|status`` wraps it.
"""

from __future__ import annotations

from streams.broker.cluster import LocalCluster
from streams.broker.errors import BrokerError
from streams.broker.local import BrokerStatus, LocalBroker
from streams.broker.provision import KafkaRuntime, find_runtime, provision_kafka

__all__ = [
    "BrokerError",
    "BrokerStatus",
    "KafkaRuntime",
    "LocalBroker",
    "LocalCluster",
    "find_runtime",
    "provision_kafka",
]
