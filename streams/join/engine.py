"""The join worker: stage 1 (:mod:`stage_pairs`) and stage 2 (:mod:`stage_judge`) in one
loop, or either alone.

Topology (every per-request topic keyed by request id and co-partitioned)::

    predictions.live ─┐
    predictions.shadow├─ stage 1 (state by request id) ─► <prefix>.join.events (key experiment)
    ground_truth ─────┘        └─ changelog ─► <prefix>.join.state (compacted)
    <prefix>.join.events ─ stage 2 (monitors per experiment) ─► metrics, alerts

The two stages are separate consumer groups, so they scale separately: run
``shadow-eval join --stage pairs`` and ``--stage judge`` as separate processes (on
separate cores) when one process cannot keep up, or several of either.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any

from streams.join.experiments import ExperimentsFile
from streams.join.metrics import JoinMetrics
from streams.join.partition_watch import PartitionWatch
from streams.join.stage_judge import JudgeStage
from streams.join.stage_pairs import BATCH_SIZE, PairStage
from streams.kafka.watchdog import Watchdog
from streams.settings import Settings
from streams.topics import co_partitioned

__all__ = ["STAGES", "JoinWorker"]

log = logging.getLogger(__name__)

STAGES = ("pairs", "judge")
POLL_S = 0.05
STATUS_EVERY_S = 30.0


class JoinWorker:
    """One join process, sharing partitions with every process started with the same
    settings.

    Parameters
    ----------
    settings
        Broker, topic prefix and partition count (must match the topics).
    experiments
        The parsed experiments file.
    stages
        ``("pairs", "judge")`` (both, the default), or one of them.
    data_dir
        Where ``rocksdb://`` state and stage-2 checkpoints live.
    batch_size
        Stage-1 records per Kafka transaction at most.
    watchdog
        What to do when a transaction call never returns (:class:`PairStage`).
    metrics
        Prometheus metrics to update (a fresh registry by default).
    leave_on_stop
        Stopped by :meth:`stop` (SIGTERM), stage 1 leaves its group so its partitions
        move at once, also as the static member a ``rocksdb://`` store makes it; False:
        a static member keeps them for the session timeout (10 s), so a restart on the
        same host and data dir within it gets them back without a rebalance. A process
        that stops on an error (a fenced one restarts in place) never leaves.

    Examples
    --------
    >>> worker = JoinWorker(settings, experiments)  # doctest: +SKIP
    >>> worker.run()  # until SIGTERM / SIGINT  # doctest: +SKIP
    """

    def __init__(
        self,
        settings: Settings,
        experiments: ExperimentsFile,
        *,
        stages: tuple[str, ...] = STAGES,
        data_dir: Path | None = None,
        batch_size: int = BATCH_SIZE,
        watchdog: Watchdog | None = None,
        metrics: JoinMetrics | None = None,
        leave_on_stop: bool = True,
    ) -> None:
        unknown = set(stages) - set(STAGES)
        if unknown or not stages:
            raise ValueError(f"stages {stages!r}: choose from {STAGES}")
        self.metrics = metrics or JoinMetrics()
        join = experiments.join
        group = f"{join.app_id}-{settings.topic_prefix}"
        data_dir = data_dir or settings.cache_dir / "join"
        self.pairs = (
            PairStage(
                settings,
                experiments,
                group,
                self.metrics,
                data_dir,
                batch_size,
                watchdog,
            )
            if "pairs" in stages
            else None
        )
        self.judge = (
            JudgeStage(settings, experiments, f"{group}-judge", self.metrics, data_dir)
            if "judge" in stages
            else None
        )
        stage = self.pairs or self.judge
        assert stage is not None
        self._partitions = PartitionWatch(
            stage.consumer, co_partitioned(settings.topics), settings.partitions
        )
        self._expire_every = join.expire_every_s
        self._report_every = join.snapshot_every_s
        self._checkpoint_every = join.checkpoint_every_s
        self._stop = threading.Event()
        self.leave_on_stop = leave_on_stop

    @property
    def latest(self) -> dict[str, dict[str, Any]]:
        """The last report per experiment this worker judges (empty without stage 2)."""
        return {} if self.judge is None else self.judge.latest

    def stop(self) -> None:
        """Ask :meth:`run` to finish its current batch and return."""
        self._stop.set()

    def run(self, install_signals: bool = True) -> None:
        """Consume until :meth:`stop` (or SIGTERM / SIGINT)."""
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self._stop.set())
        pairs, judge = self.pairs, self.judge
        for stage in (pairs, judge):
            if stage is not None:
                stage.start()
        started = time.monotonic()
        next_expiry = started + self._expire_every
        next_report = started + self._report_every
        next_checkpoint = started + self._checkpoint_every
        next_status = started + STATUS_EVERY_S
        try:
            while not self._stop.is_set():
                busy = pairs.poll(POLL_S) if pairs is not None else 0
                if judge is not None:
                    judge.poll(0 if busy else POLL_S)
                now = time.monotonic()
                self._partitions.check(now)
                if pairs is not None and now >= next_expiry:
                    next_expiry = now + self._expire_every
                    pairs.expire()
                if judge is not None and now >= next_report:
                    next_report = now + self._report_every
                    judge.publish_reports()
                if judge is not None and now >= next_checkpoint:
                    next_checkpoint = now + self._checkpoint_every
                    judge.checkpoint()
                if now >= next_status:
                    next_status = now + STATUS_EVERY_S
                    log.info(
                        "join: %s",
                        "; ".join(s.status() for s in (pairs, judge) if s is not None),
                    )
        finally:
            if pairs is not None:  # stopped as asked: hand its partitions over at once
                pairs.close(leave=self._stop.is_set() and self.leave_on_stop)
            if judge is not None:
                judge.close()
