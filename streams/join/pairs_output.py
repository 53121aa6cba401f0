"""What one transaction of join stage 1 writes: its join events and its requests' new states.

Every stage-1 transaction (a batch of inputs, or an expiry pass, in
:mod:`streams.join.stage_pairs`) ends the same way. The join events the pairing made go out as
JoinEventBatch records, one per experiment and up to ``MAX_EVENTS_BYTES`` each; each
request whose state changed is written to the compacted ``<prefix>.join.state``
changelog. Both go in the open transaction. The per-partition stores take the same state
changes only once the transaction committed (:meth:`PairOutput.apply`), so a store only
ever holds committed state. The loop decides what to write; this module is how it is
written.
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Mapping, Sequence

from streams.join.keys import StoreKey, changelog_key
from streams.join.metrics import JoinMetrics
from streams.join.slot_events import event_batch, event_chunks
from streams.join.slot_state import Slot
from streams.join.slots import EncodedJoinEvent
from streams.join.store import Due, PartitionStore
from streams.kafka import ProducerWrapper
from streams.records import JoinKind
from streams.settings import Settings
from streams.topics import partition_of

__all__ = ["PairOutput"]

_KIND_AND_REASON = operator.itemgetter(1, 2)
"""Of a queued join event."""


class PairOutput:
    """Join stage 1's writes in its open transaction, and into its stores once committed.

    Parameters
    ----------
    producer
        The stage's transactional producer.
    settings
        Where the join events (``join_events``) and the states (``join_state``) go, and
        the topics' partition count (the join events are partitioned by experiment).
    slot_header, batch_header
        The codec's header of a state (JoinSlot) and of a JoinEventBatch record.
    parts
        The store of each input partition owned (the stage's own mapping, kept up to date
        on rebalances).
    metrics
        Where the join events sent are counted.
    """

    def __init__(
        self,
        producer: ProducerWrapper,
        settings: Settings,
        slot_header: bytes,
        batch_header: bytes,
        parts: Mapping[int, PartitionStore],
        metrics: JoinMetrics,
    ) -> None:
        self.producer = producer
        self.topics = settings.topics
        self.partitions = settings.partitions
        self._slot_header = slot_header
        self._batch_header = batch_header
        self.parts = parts
        self.metrics = metrics
        self._event_partitions: dict[str, int] = {}

    def produce_events(
        self, events: Sequence[EncodedJoinEvent], emitted: Counter[tuple[JoinKind, str | None]]
    ) -> None:
        """Produce a transaction's join events in it, grouped by experiment into
        JoinEventBatch records of up to MAX_EVENTS_BYTES, keyed and partitioned by
        experiment; tally them into ``emitted`` (counted once committed)."""
        by_experiment: dict[str, list[bytes]] = {}
        for experiment, _kind, _reason, value in events:
            queued = by_experiment.get(experiment)
            if queued is None:
                by_experiment[experiment] = [value]
            else:
                queued.append(value)
        emitted.update(map(_KIND_AND_REASON, events))
        topic, header, produce = self.topics.join_events, self._batch_header, self.producer.produce
        for experiment, values in by_experiment.items():
            key, partition = experiment.encode(), self._event_partition(experiment)
            for chunk in event_chunks(values):
                produce(topic, event_batch(header, chunk), key, partition)

    def count_emitted(self, emitted: Counter[tuple[JoinKind, str | None]]) -> None:
        self.metrics.count(
            self.metrics.join_events,
            {(kind.value, reason or ""): n for (kind, reason), n in emitted.items()},
        )

    def _event_partition(self, experiment: str) -> int:
        partition = self._event_partitions.get(experiment)
        if partition is None:
            partition = partition_of(experiment.encode(), self.partitions)
            self._event_partitions[experiment] = partition
        return partition

    def write_states(
        self, touched: dict[StoreKey, Slot | None], dirty: dict[StoreKey, int]
    ) -> dict[int, dict[StoreKey, bytes | None]]:
        """Produce a batch's state changes to the changelog (in the open transaction);
        returns them by partition, for :meth:`apply` once the transaction committed.

        A request's changelog partition is its input partition (murmur2 of the request
        id, as every producer of the per-request topics must use): the owner of input
        partition p restores changelog partition p.
        """
        header, topic = self._slot_header, self.topics.join_state
        produce = self.producer.produce
        changes: dict[int, dict[StoreKey, bytes | None]] = {}
        for key, partition in dirty.items():
            slot = touched[key]
            of_partition = changes.get(partition)
            if of_partition is None:
                of_partition = changes[partition] = {}
            if slot is None:
                of_partition[key] = None
                produce(topic, None, changelog_key(key), partition)
            else:
                packed = of_partition[key] = slot.pack()
                produce(topic, header + packed, changelog_key(key), partition)
        return changes

    def apply(
        self,
        changes: dict[int, dict[StoreKey, bytes | None]],
        filed: dict[int, list[tuple[StoreKey, int]]],
        settled: dict[int, list[Due]],
    ) -> None:
        """Write a committed transaction's state changes and deadlines to the stores."""
        for partition in changes.keys() | filed.keys() | settled.keys():
            self.parts[partition].write(
                changes.get(partition, {}), filed.get(partition, ()), settled.get(partition, ())
            )
