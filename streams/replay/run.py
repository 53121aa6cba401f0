"""Replay traffic through :class:`OfflineJoin`, with snapshots every ``snapshot_every_s``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from streams.join.experiments import ExperimentsFile
from streams.join.offline import OfflineJoin
from streams.records import Prediction
from streams.replay.traffic import TrafficRecord, read_traffic
from streams.report.model import RunResult

__all__ = ["configure_run", "replay", "replay_records"]


def _report_all(join: OfflineJoin, run: RunResult, now_ms: int) -> None:
    for name in join.judge.experiments:
        report = join.judge.report(name, now_ms)
        run.add_snapshot(report.snapshot)
        run.alerts += report.alerts
        if report.verdict is not None:
            run.verdicts.append(report.verdict)


def configure_run(run: RunResult, experiments: ExperimentsFile) -> RunResult:
    """Tell ``run`` each experiment's primary metric and business KPIs (from the file).

    The KPIs are the numeric metrics declared in an experiment that has KPI functions:
    the names those functions return.

    Examples
    --------
    >>> exps = ExperimentsFile.parse('''
    ... [[experiments]]
    ... name = "e"
    ... model = "m"
    ... live_version = "v1"
    ... candidate = "v2"
    ... primary_metric = "late"
    ... kpis = ["streams.downstream.delivery:delivery_kpis"]
    ... metrics = [{ name = "late", binary = true, higher_is_better = false }]
    ... ''')
    >>> run = configure_run(RunResult("r"), exps)
    >>> run.primary_metrics, run.kpis
    ({'e': 'late'}, {'e': ('late',)})
    """
    for experiment in experiments.experiments:
        run.primary_metrics[experiment.name] = experiment.rules.primary_metric
        if experiment.kpis:
            run.kpis[experiment.name] = tuple(
                m.name for m in experiment.rules.custom_metrics if m.kind == "paired"
            )
    return run


def replay_records(
    records: Sequence[TrafficRecord],
    experiments: ExperimentsFile,
    *,
    title: str = "shadow-eval replay",
    snapshot_every_s: float | None = None,
) -> RunResult:
    """Join and judge ``records`` (sorted by timestamp) in event time.

    Snapshots, alerts and verdicts are computed every ``snapshot_every_s`` seconds of event
    time (the experiments file's ``snapshot_every_s`` by default), as the streaming agent
    does in wall-clock time, and once more after the end of the traffic, when everything
    still pending has expired.

    Examples
    --------
    >>> from streams.records import GroundTruth, Role
    >>> exps = ExperimentsFile.parse('''
    ... [[experiments]]
    ... name = "e"
    ... model = "m"
    ... live_version = "v1"
    ... candidate = "v2"
    ... task = "binary"
    ... ''')
    >>> records = [Prediction("r1", "m", "v1", Role.LIVE, 0, "1"),
    ...            Prediction("r1", "m", "v2", Role.SHADOW, 1, "0"),
    ...            GroundTruth("r1", "m", 2, "1")]
    >>> run = replay_records(records, exps)
    >>> run.final("e").counts["labelled"], run.final("e").decision
    (1, 'continue')
    """
    run = configure_run(RunResult(title), experiments)
    run.add_latencies(r for r in records if isinstance(r, Prediction))
    join = OfflineJoin(experiments)
    every_ms = int((snapshot_every_s or experiments.join.snapshot_every_s) * 1000)
    next_ms: int | None = None
    for record in records:
        if next_ms is None:
            next_ms = record.timestamp_ms + every_ms
        if record.timestamp_ms >= next_ms:
            # One snapshot per interval boundary crossed (a long gap gives one, not many).
            join.expire(next_ms)
            _report_all(join, run, next_ms)
            next_ms += every_ms * ((record.timestamp_ms - next_ms) // every_ms + 1)
        join.feed([record])
    join.finish()
    _report_all(join, run, max(join.now_ms, next_ms or 0))
    return run


def replay(
    paths: Iterable[Path | str],
    experiments: ExperimentsFile,
    *,
    title: str = "shadow-eval replay",
    snapshot_every_s: float | None = None,
) -> RunResult:
    """Read traffic files (JSONL or Avro) and :func:`replay_records` them."""
    files = [Path(p) for p in paths]
    records = read_traffic(files)
    run = replay_records(records, experiments, title=title, snapshot_every_s=snapshot_every_s)
    run.notes["traffic"] = ", ".join(str(p) for p in files)
    run.notes["records"] = str(len(records))
    return run
