"""The fault scenarios' verifier: read every output at the end and check exact counts.

- every request the hook delivered has a prediction of each candidate; a duplicate
  prediction (a redelivery) carries the same ``dedup_key`` as the first;
- per experiment, the final snapshot counts every delivered request paired once and
  every label once, expires nothing (the TTLs are longer than the scenario) and so
  counts no duplicate twice;
- the clearly worse candidate's verdict is ``reject``.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from typing import TypeVar

from confluent_kafka import Consumer, TopicPartition

from streams.codec import Codec
from streams.kafka.config import client_config
from streams.records import Prediction
from streams.settings import Settings
from tests.faults.workload import CANDIDATES, EXPERIMENTS, Workload
from tests.integration.join_helpers import Expected, Outputs

CODEC = Codec()
T = TypeVar("T")


@dataclass(frozen=True)
class Figures:
    """What one scenario measured (printed, and kept in the notes)."""

    scenario: str
    produced: int
    paired: dict[str, int]
    expired: dict[str, int]
    duplicates_seen: dict[str, int]
    duplicates_counted: int
    verdict: str
    seconds_to_counts: float

    def line(self) -> str:
        return " ".join(f"{key}={value}" for key, value in asdict(self).items())


def read_predictions(settings: Settings, timeout: float = 60) -> list[Prediction]:
    """Every shadow prediction, from offset 0 to the end of each partition."""
    topic = settings.topics.shadow_predictions
    return [record for _, _, record in read_records(settings, topic, Prediction, timeout)]


def read_records(
    settings: Settings, topic: str, kind: type[T], timeout: float = 60
) -> list[tuple[int, int, T]]:
    """``(partition, offset, record)`` of every record of ``topic``, from offset 0 to
    the end of each partition."""
    consumer = Consumer(client_config(settings, **{"group.id": f"v-{uuid.uuid4().hex[:8]}"}))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        }
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        found: list[tuple[int, int, T]] = []
        read = dict.fromkeys(partitions, 0)
        deadline = time.monotonic() + timeout
        while any(read[p] < ends[p] for p in partitions):
            assert time.monotonic() < deadline, f"read {read} of {ends}"
            for message in consumer.consume(1000, 0.5):
                if message.error() is None:
                    partition, offset = message.partition(), message.offset()
                    found.append((partition, offset, CODEC.decode_as(kind, message.value())))
                    read[partition] = offset + 1
        return found
    finally:
        consumer.close()


def verify(workload: Workload, scenario: str, timeout: float = 240) -> Figures:
    """Wait for the exact final counts, check every output, and return the figures."""
    traffic, settings = workload.traffic, workload.settings
    assert traffic.failed == 0, f"the hook lost {traffic.failed} records"
    expected = Expected(paired=len(traffic.served), labelled=len(traffic.labelled))
    started = time.monotonic()
    outputs = Outputs(settings)
    try:
        try:
            outputs.wait_for(expected, timeout=timeout, names=EXPERIMENTS)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{workload.logs()}") from None
    finally:
        outputs.close()
    waited = time.monotonic() - started
    served = set(traffic.served)
    predictions = read_predictions(settings)
    duplicates: dict[str, int] = {}
    for name, version in CANDIDATES.items():
        mine = [p for p in predictions if p.version == version]
        by_request = Counter(p.request_id for p in mine)
        assert set(by_request) == served, f"{name}: predictions != requests served"
        keys = {p.dedup_key for p in mine}
        assert len(keys) == len(served), f"{name}: a duplicate with a new dedup_key"
        duplicates[name] = len(mine) - len(served)
    snapshots = outputs.snapshots
    assert snapshots["worse"].decision == "reject", snapshots["worse"]
    return Figures(
        scenario=scenario,
        produced=traffic.total,
        paired={n: snapshots[n].counts["paired"] for n in EXPERIMENTS},
        expired={
            n: sum(v for k, v in snapshots[n].counts.items() if k.startswith("expired"))
            for n in EXPERIMENTS
        },
        duplicates_seen=duplicates,
        duplicates_counted=0,  # the counts above equal what was served, exactly
        verdict=snapshots["worse"].decision,
        seconds_to_counts=round(waited, 1),
    )
