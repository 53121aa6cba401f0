"""kill -9 of brokers mid-stream: the leader of an inputs partition, then the transaction
coordinator of a join process; each comes back after ``DOWN_S``. Counts stay exact."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from streams.broker import LocalCluster
from streams.settings import Settings
from tests.faults.verify import verify
from tests.faults.workload import Workload, transactional_id

DOWN_S = 20.0
TOTAL = 1500
RATE = 60.0


def _outage(cluster: LocalCluster, node: int) -> float:
    """kill -9 ``node``, bring it back after DOWN_S; seconds until it is in sync again."""
    cluster.kill(node, signal.SIGKILL)
    time.sleep(DOWN_S)
    started = time.monotonic()
    cluster.start(node)
    cluster.wait_in_sync(120)
    return time.monotonic() - started


def test_leader_and_coordinator_kills_keep_counts_exact(
    cluster: LocalCluster, cluster_settings: Settings, tmp_path: Path
) -> None:
    workload = Workload(cluster_settings, tmp_path, TOTAL, RATE)
    try:
        workload.start_traffic()
        workload.traffic.wait_sent(TOTAL // 5)
        leader = cluster.leader(cluster_settings.topics.inputs, 0)
        assert leader is not None
        back = [_outage(cluster, leader)]
        coordinator = cluster.transaction_coordinator(transactional_id(workload.joins[0]))
        assert coordinator is not None
        back.append(_outage(cluster, coordinator))
        workload.wait_traffic()
        figures = verify(workload, "leader and coordinator kill -9")
        restarts = sum(j.log.read_text().count("restarting the process") for j in workload.joins)
        print(figures.line(), f"in_sync_after_restart_s={[round(b, 1) for b in back]}",
              f"joins_restarted_in_place={restarts}")  # fmt: skip
        assert all(workload.alive().values()), workload.alive()
    finally:
        workload.stop()
