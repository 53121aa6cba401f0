"""Zombies: a join process frozen (SIGSTOP) for longer than its group session timeout
while the other takes its partitions, then woken (SIGCONT). Whatever the zombie had in
flight must be fenced: nothing it writes is read committed, and the counts stay exact.
A zombie whose producer was fenced restarts itself in place (the join's CLI) and rejoins."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from streams.broker import LocalCluster
from streams.kafka.config import GROUP_SESSION_TIMEOUT_MS
from streams.settings import Settings
from tests.faults.verify import verify
from tests.faults.workload import OWNS, Workload

FROZEN_S = GROUP_SESSION_TIMEOUT_MS / 1000 + 10
TOTAL = 1200
RATE = 60.0


def test_a_frozen_join_process_is_fenced_and_counts_stay_exact(
    cluster: LocalCluster, cluster_settings: Settings, tmp_path: Path
) -> None:
    workload = Workload(cluster_settings, tmp_path, TOTAL, RATE)
    zombie, survivor = workload.joins
    try:
        workload.start_traffic()
        workload.traffic.wait_sent(TOTAL // 4)
        taken_before = len(OWNS.findall(survivor.log.read_text()))
        zombie.process.send_signal(signal.SIGSTOP)
        time.sleep(FROZEN_S)
        took_over = len(OWNS.findall(survivor.log.read_text())) > taken_before
        zombie.process.send_signal(signal.SIGCONT)
        workload.wait_traffic()
        figures = verify(workload, f"join process frozen {FROZEN_S:.0f} s")
        restarted = "was fenced" in zombie.log.read_text()  # restart_process, in place
        print(figures.line(), f"survivor_took_over={took_over} zombie_restarted={restarted}")
        assert took_over, workload.logs()
        assert all(workload.alive().values()), (workload.alive(), workload.logs())
    finally:
        zombie.process.send_signal(signal.SIGCONT)
        workload.stop()
