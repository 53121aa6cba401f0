"""The Kafka adapter layer: the only code in shadow-eval that builds Kafka clients.

- :mod:`streams.kafka.config`: librdkafka configurations from :class:`~streams.settings.Settings`;
- :mod:`streams.kafka.clients`: the small interface the loops use, and the one factory of
  confluent-kafka ``Producer``, ``Consumer`` and ``AdminClient`` objects;
- :mod:`streams.kafka.producer`: the producer wrapper (back-pressure, delivery accounting,
  rate-limited logs);
- :mod:`streams.kafka.transaction`: one batch as one Kafka transaction (join stage 1);
- :mod:`streams.kafka.watchdog`: restarts a process stuck in a transaction call;
- :mod:`streams.kafka.offset_loss`: offsets out of range counted and alerted, not skipped;
- :mod:`streams.kafka.deadletter`: the dead-letter path of the worker and the join;
- :mod:`streams.kafka.assignment`: a consumer's lag, pausing its partitions, log text.

It imports confluent-kafka, the settings, the codec and the records, nothing heavier:
the serving app's hook produces through it.
"""

from streams.kafka.clients import (
    CONFLUENT,
    ConfluentClients,
    ConsumerLike,
    KafkaClients,
    MessageLike,
    ProducerLike,
)
from streams.kafka.deadletter import dead_letter, send_dead_letter
from streams.kafka.producer import ProducerWrapper
from streams.kafka.transaction import TransactionalBatch
from streams.kafka.watchdog import Watchdog

__all__ = [
    "CONFLUENT",
    "ConfluentClients",
    "ConsumerLike",
    "KafkaClients",
    "MessageLike",
    "ProducerLike",
    "ProducerWrapper",
    "TransactionalBatch",
    "Watchdog",
    "dead_letter",
    "send_dead_letter",
]
