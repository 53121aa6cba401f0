"""Scale-out then scale-in mid-stream: one worker per candidate and one join process
serve the start; a second of each joins; then the first of each is stopped gracefully
(SIGTERM). Counts stay exact, nothing is counted twice, the worse candidate is rejected.

A graceful stop hands its partitions over at once: a worker drains and commits before
it leaves (no duplicates), a join process leaves its group, also as the static member a
``rocksdb://`` store makes it (librdkafka skips a static member's leave on close, so stage
1 unsubscribes first). With ``--hold-partitions-on-stop`` a ``rocksdb://`` join process
keeps them for the group session timeout instead (for a restart on the same host)."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from streams.broker import LocalCluster
from streams.kafka.config import GROUP_SESSION_TIMEOUT_MS
from streams.settings import Settings
from tests.faults.verify import verify
from tests.faults.workload import Service, Workload, inputs_owned
from tests.integration.join_helpers import JoinProcess

TOTAL = 1200
RATE = 50.0
STAGE_1_OWNS = re.compile(
    r"stage 1 owns partitions \[([\d, ]*)\]; restored \d+ requests in ([\d.]+)s"
)


def _join_owns(join: JoinProcess) -> set[int]:
    """The input partitions a join process's stage 1 owns last (eager assignments)."""
    found = STAGE_1_OWNS.findall(join.log.read_text(errors="replace"))
    return {int(n) for n in found[-1][0].split(",") if n.strip()} if found else set()


def _last_restore_s(join: JoinProcess) -> float:
    """How long the last assignment's restore took (it comes before the log line)."""
    return float(STAGE_1_OWNS.findall(join.log.read_text(errors="replace"))[-1][1])


def _until(conditions: dict[str, Callable[[], bool]], workload: Workload) -> dict[str, float]:
    """Seconds until each condition first holds."""
    started, took = time.monotonic(), {}
    while len(took) < len(conditions):
        elapsed = time.monotonic() - started
        assert elapsed < 90, f"not yet: {sorted(set(conditions) - set(took))}\n{workload.logs()}"
        took.update({name: elapsed for name, holds in conditions.items()
                     if name not in took and holds()})  # fmt: skip
        time.sleep(0.1)
    return took


def _terminate(process: Service | JoinProcess) -> None:
    os.killpg(process.process.pid, signal.SIGTERM)


@pytest.mark.parametrize(
    ("store", "hold"),
    [("memory://", False), ("rocksdb://", False), ("rocksdb://", True)],
    ids=["memory", "rocksdb", "rocksdb-held"],
)
def test_workers_and_joins_scale_out_and_in_mid_stream(
    cluster: LocalCluster, cluster_settings: Settings, tmp_path: Path, store: str, hold: bool
) -> None:
    store_args = ("--store", store)
    first_args = (*store_args, "--hold-partitions-on-stop") if hold else store_args
    workload = Workload(cluster_settings, tmp_path, TOTAL, RATE, joins=1, join_args=first_args)
    partitions = set(range(cluster_settings.partitions))
    started = time.monotonic()
    try:
        workload.start_traffic()
        workload.traffic.wait_sent(TOTAL // 6)
        first_workers, first_join = list(workload.workers), workload.joins[0]
        added = [workload.add_worker(w.name.removeprefix("worker-")) for w in first_workers]
        added_join = workload.add_join(*store_args)
        out_s = max(_until({
            **{w.name: lambda w=w: bool(inputs_owned(w)) for w in added},
            "join": lambda: bool(_join_owns(added_join)),
        }, workload).values())  # fmt: skip
        sent_at_scale_in = workload.traffic.sent
        stopping = (*first_workers, first_join)
        for process in stopping:
            _terminate(process)
        handover = _until({
            "workers": lambda: all(inputs_owned(w) == partitions for w in added),
            "join": lambda: _join_owns(added_join) == partitions,
        }, workload)  # fmt: skip
        codes = [process.process.wait(60) for process in stopping]
        rebalance_s = handover["join"] - _last_restore_s(added_join)
        workload.wait_traffic()
        figures = verify(workload, f"scale out and in ({store}{', held' * hold})")
        print(figures.line(), f"scale_out_s={out_s:.1f} sent_at_scale_in={sent_at_scale_in}",
              f"workers_handover_s={handover['workers']:.1f}",
              f"join_handover_s={handover['join']:.1f} (rebalance {rebalance_s:.1f})",
              f"test_s={time.monotonic() - started:.0f}")  # fmt: skip
        assert sent_at_scale_in < TOTAL, "scale-in after the traffic ended"
        assert codes == [0, 0, 0], (codes, workload.logs())
        assert figures.duplicates_seen == {"worse": 0, "same": 0}, figures
        # Left the group: no wait for the session timeout (held: at least its timeout
        # less a heartbeat interval).
        left = rebalance_s < 0.6 * GROUP_SESSION_TIMEOUT_MS / 1000
        assert left != hold, (rebalance_s, handover)
        assert all(w.alive() for w in added), workload.logs()
        assert added_join.process.poll() is None, workload.logs()
    finally:
        workload.stop()
