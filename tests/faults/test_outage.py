"""The whole cluster unreachable for longer than the transaction timeout, the group
session timeouts and the workers' delivery timeout, with the hook, the workers and the
join running: the hook holds what it is given, nobody exits, and the counts are exact
once the cluster is back.

By default every node is frozen (SIGSTOP) for ``OUTAGE_S`` = 40 s, which costs the suite
little more than the outage itself; ``SHADOW_FAULTS_CRASH=1`` kill -9s every node instead
and restarts them after the outage (a cold start of the cluster adds about a minute), with
``SHADOW_FAULTS_OUTAGE_S`` to make it longer.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from streams.broker import LocalCluster
from streams.settings import Settings
from tests.faults.verify import verify
from tests.faults.workload import Workload

CRASH = os.environ.get("SHADOW_FAULTS_CRASH") == "1"
OUTAGE_S = float(os.environ.get("SHADOW_FAULTS_OUTAGE_S", "60" if CRASH else "40"))
DELIVERY_TIMEOUT_MS = 15_000
"""The workers' ``message.timeout.ms`` from their client.properties: shorter than the outage."""
TOTAL = 1500
RATE = 50.0


def test_whole_cluster_outage_nobody_exits_and_counts_stay_exact(
    cluster: LocalCluster, cluster_settings: Settings, tmp_path: Path
) -> None:
    properties = tmp_path / "client.properties"
    properties.write_text(f"message.timeout.ms={DELIVERY_TIMEOUT_MS}\n")
    workload = Workload(
        cluster_settings, tmp_path, TOTAL, RATE,
        worker_env={"SHADOW_KAFKA_CONFIG_FILE": str(properties)},
    )  # fmt: skip
    try:
        workload.start_traffic()
        workload.traffic.wait_sent(TOTAL // 4)
        for node in cluster.nodes:
            if CRASH:
                cluster.kill(node, signal.SIGKILL)
            else:
                cluster.pause(node)
        sent_before = workload.traffic.sent
        time.sleep(OUTAGE_S)
        sent_during = workload.traffic.sent - sent_before
        restarted = time.monotonic()
        for node in cluster.nodes:
            cluster.resume(node)
        cluster.start(timeout=180)
        back_s = time.monotonic() - restarted
        assert all(workload.alive().values()), (workload.alive(), workload.logs())
        workload.wait_traffic()
        assert workload.traffic.dropped == 0  # the hook's buffer held the outage's requests
        how = "kill -9" if CRASH else "SIGSTOP"
        figures = verify(workload, f"every node {how} for {OUTAGE_S:.0f} s", timeout=300)
        print(
            figures.line(),
            f"sent_during_outage={sent_during} cluster_back_s={back_s:.1f}",
            f"recovered_s={time.monotonic() - restarted:.1f}",
        )
        assert all(workload.alive().values()), (workload.alive(), workload.logs())
        for service in workload.workers:
            assert "delivery failed" not in service.text(), service.text()[-3000:]
    finally:
        workload.stop()
