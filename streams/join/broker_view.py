"""What the join agent asks the broker directly, outside faust: its group's committed
offsets, high watermarks, and whole partitions of the join-events log.

A plain confluent-kafka consumer with the group's id that only ever *assigns* partitions
(never subscribes), so it reads without joining the group or committing anything.
"""

from __future__ import annotations

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from faust.types import TP

from streams.settings import Settings

__all__ = ["BrokerView"]

_READ_BATCH = 5000


class BrokerView:
    """Blocking broker look-ups; the agent calls them from an executor thread."""

    def __init__(self, settings: Settings, group_id: str) -> None:
        self._consumer = Consumer(
            settings.confluent_config(**{"group.id": group_id, "enable.auto.commit": False})
        )

    def ends(self, tps: list[TP]) -> dict[TP, tuple[int, int]]:
        """``{tp: (where the group resumes reading, high watermark)}``.

        The group resumes at its commit, or at the log start when it has none (the join
        reads from the earliest offset).
        """
        if not tps:
            return {}
        partitions = [TopicPartition(tp.topic, tp.partition) for tp in tps]
        committed = {
            (p.topic, p.partition): p.offset
            for p in self._consumer.committed(partitions, timeout=10)
        }
        ends = {}
        for tp in tps:
            low, high = self._consumer.get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition), timeout=10, cached=False
            )
            start = committed.get((tp.topic, tp.partition), -1)
            ends[tp] = (start if start >= 0 else low, high)
        return ends

    def read_log(self, topic: str, partitions: set[int]) -> list[bytes]:
        """Every value in ``partitions`` of ``topic`` up to their current end."""
        ends: dict[int, int] = {}
        for partition in partitions:
            _, high = self._consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=10, cached=False
            )
            if high > 0:
                ends[partition] = high
        values: list[bytes] = []
        if not ends:
            return values
        self._consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        try:
            remaining = dict(ends)
            while remaining:
                for message in self._consumer.consume(_READ_BATCH, timeout=10):
                    source, offset, value = message.partition(), message.offset(), message.value()
                    if message.error() or source is None or offset is None:
                        continue
                    end = remaining.get(source)
                    if end is not None and offset < end:
                        if value is not None:
                            values.append(value)
                        if offset + 1 >= end:
                            del remaining[source]
        finally:
            self._consumer.unassign()
        return values

    def close(self) -> None:
        self._consumer.close()
