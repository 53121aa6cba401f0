"""The watchdog: a join process stuck in a transaction call restarts itself in place.

The node coordinating a join process's transactions is frozen (SIGSTOP) mid-stream. The
process's next commit blocks on it past ``[join] stall_limit_s`` (4 s here, 45 s by
default; the call's own timeout is 10 s), the watchdog finds the call stuck and the
process re-executes itself (``restart_process``: every bit of the join's state is in
Kafka). The node is woken once the restart is logged. Counts stay exact."""

from __future__ import annotations

import re
import time
from pathlib import Path

from streams.broker import LocalCluster
from streams.settings import Settings
from tests.faults.verify import verify
from tests.faults.workload import Workload, transactional_id

STALL_LIMIT_S = 4
MAX_FROZEN_S = 40.0
TOTAL = 900
RATE = 60.0
STUCK = re.compile(r"(committing|aborting) a transaction is stuck; restarting the process")


def test_a_join_stuck_in_a_transaction_call_restarts_in_place(
    cluster: LocalCluster, cluster_settings: Settings, tmp_path: Path
) -> None:
    workload = Workload(
        cluster_settings, tmp_path, TOTAL, RATE, join_keys=f"stall_limit_s = {STALL_LIMIT_S}\n"
    )
    stuck = workload.joins[0]
    node = None
    try:
        workload.start_traffic()
        workload.traffic.wait_sent(TOTAL // 4)
        node = cluster.transaction_coordinator(transactional_id(stuck))
        assert node is not None
        cluster.pause(node)
        frozen = time.monotonic()
        while not STUCK.search(stuck.log.read_text()):
            assert time.monotonic() - frozen < MAX_FROZEN_S, f"no restart:\n{workload.logs()}"
            time.sleep(0.2)
        restarted_after = time.monotonic() - frozen
        cluster.resume(node)
        node = None
        workload.wait_traffic()
        figures = verify(workload, f"join stuck in a transaction call (limit {STALL_LIMIT_S} s)")
        restarts = [len(STUCK.findall(j.log.read_text())) for j in workload.joins]
        print(figures.line(), f"restarted_after_s={restarted_after:.1f}",
              f"restarts_per_join={restarts}")  # fmt: skip
        assert all(workload.alive().values()), (workload.alive(), workload.logs())
    finally:
        if node is not None:
            cluster.resume(node)
        workload.stop()
