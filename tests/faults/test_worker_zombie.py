"""A zombie producer of predictions: one of two workers of the worse candidate frozen
(SIGSTOP) for longer than its group session timeout while the other takes its
partitions, then woken (SIGCONT).

Workers are at least once, so the zombie's uncommitted inputs are scored twice. What is
bounded: a duplicate is only ever of a request the zombie had in hand when it froze (an
input of a partition it owned, between its last committed offset and the end of the
partition then), scored once by each worker, never more; every copy carries the same
``dedup_key`` and the join counts none twice (the counts stay exact)."""

from __future__ import annotations

import signal
import socket
import time
from collections import defaultdict
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from streams.broker import LocalCluster
from streams.kafka.config import client_config
from streams.records import ModelInput
from streams.settings import Settings
from streams.worker.config import WorkerConfig
from tests.faults.verify import read_predictions, read_records, verify
from tests.faults.workload import CANDIDATES, WORKER_SESSION_MS, Workload, inputs_owned

FROZEN_S = WORKER_SESSION_MS / 1000 + 8
TOTAL = 1200
RATE = 60.0


def _in_hand(settings: Settings, group: str, partitions: set[int]) -> dict[int, range]:
    """Per partition, the input offsets a frozen worker can hold: from its group's
    committed offset to the partition's end."""
    topic = settings.topics.inputs
    consumer = Consumer(client_config(settings, **{"group.id": group}))  # never subscribes
    try:
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions], 10)
        return {
            tp.partition: range(
                max(tp.offset, 0), consumer.get_watermark_offsets(tp, timeout=10)[1]
            )
            for tp in committed
        }
    finally:
        consumer.close()


def test_a_frozen_worker_duplicates_only_what_it_had_in_hand(
    cluster: LocalCluster, cluster_settings: Settings, tmp_path: Path
) -> None:
    workload = Workload(cluster_settings, tmp_path, TOTAL, RATE)
    zombie = workload.workers[0]
    assert zombie.name == "worker-worse"
    survivor = workload.add_worker("worse")
    group = WorkerConfig(name="churn").group_for(CANDIDATES["worse"])
    started = time.monotonic()
    try:
        workload.start_traffic()
        workload.traffic.wait_sent(TOTAL // 4)
        zombie.signal(signal.SIGSTOP)
        owned = inputs_owned(zombie)
        assert owned, workload.logs()
        in_hand = _in_hand(cluster_settings, group, owned)
        time.sleep(FROZEN_S)
        took_over = owned <= inputs_owned(survivor)
        zombie.signal(signal.SIGCONT)
        workload.wait_traffic()
        figures = verify(workload, f"worker frozen {FROZEN_S:.0f} s")
        host = socket.gethostname()
        ids = {
            f"{host}:{zombie.process.pid}": "zombie",
            f"{host}:{survivor.process.pid}": "survivor",
        }
        by_request: dict[str, list[str]] = defaultdict(list)
        for prediction in read_predictions(cluster_settings):
            if prediction.version == CANDIDATES["worse"]:
                by_request[prediction.request_id].append(ids.get(prediction.worker or "", "?"))
        position = {
            record.request_id: (partition, offset)
            for partition, offset, record in read_records(
                cluster_settings, cluster_settings.topics.inputs, ModelInput
            )
        }
        twice = {r: sorted(w) for r, w in by_request.items() if len(w) > 1}
        outside = {
            r: position[r] for r in twice if position[r][1] not in in_hand.get(position[r][0], ())
        }
        held = sum(len(offsets) for offsets in in_hand.values())
        print(figures.line(), f"zombie_partitions={sorted(owned)} in_hand={held}",
              f"duplicated={len(twice)} survivor_took_over={took_over}",
              f"lost_logged={'lost' in zombie.text()}",
              f"test_s={time.monotonic() - started:.0f}")  # fmt: skip
        assert took_over, workload.logs()
        assert all(w == ["survivor", "zombie"] for w in twice.values()), twice
        assert not outside, f"duplicates of inputs the zombie never had in hand: {outside}"
        assert len(twice) <= held
        assert all(workload.alive().values()), (workload.alive(), workload.logs())
    finally:
        zombie.signal(signal.SIGCONT)
        workload.stop()
