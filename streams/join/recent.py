"""What join stage 2 remembers of its own reports, for the live experiment page: the last
snapshots of each experiment (its trajectories), and the recent alert transitions and
verdict changes. Bounded, and safe to read from another thread (the web server's).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable

from streams.join.judge import Report
from streams.records import Alert, MetricsSnapshot, Verdict

__all__ = ["HISTORY", "RECENT_ALERTS", "RecentReports"]

HISTORY = 240
"""Snapshots kept per experiment (the page's trajectories; older ones are thinned out)."""
RECENT_ALERTS = 50
"""Alert transitions and verdict changes kept, all experiments together."""


class RecentReports:
    """The recent reports of the experiments one stage-2 worker owns.

    When an experiment's history is full, every other snapshot of its older half is
    dropped, so the trajectory always spans the whole run at a coarser step (memory
    stays bounded by ``history`` snapshots per experiment).

    Parameters
    ----------
    history
        Snapshots kept per experiment (at least 4).
    alerts
        Alerts and verdicts kept.

    Examples
    --------
    >>> from streams.records import MetricsSnapshot
    >>> recent = RecentReports(history=4)
    >>> for t in range(6):
    ...     recent.add_snapshot(MetricsSnapshot("e", "m", "v1", "v2", t, {}, (), "continue", ""))
    >>> [s.timestamp_ms for s in recent.snapshots()["e"]], recent.version
    ([0, 3, 4, 5], 6)
    """

    def __init__(self, history: int = HISTORY, alerts: int = RECENT_ALERTS) -> None:
        if history < 4:
            raise ValueError(f"history={history}: keep at least 4 snapshots")
        self._history = history
        self._snapshots: dict[str, list[MetricsSnapshot]] = {}
        self._alerts: deque[Alert | Verdict] = deque(maxlen=alerts)
        self._lock = threading.Lock()
        self.version = 0
        """Bumped by every change: a reader re-renders only when it moved."""

    def add(self, report: Report) -> None:
        """Remember one report of :meth:`streams.join.judge.Judge.report`."""
        self.add_snapshot(report.snapshot)
        with self._lock:
            self._alerts.extend(report.alerts)
            if report.verdict is not None:
                self._alerts.append(report.verdict)

    def add_snapshot(self, snapshot: MetricsSnapshot) -> None:
        with self._lock:
            kept = self._snapshots.setdefault(snapshot.experiment, [])
            kept.append(snapshot)
            if len(kept) > self._history:
                half = len(kept) // 2
                kept[:half] = kept[:half:2]
            self.version += 1

    def retain(self, experiments: Iterable[str]) -> None:
        """Forget the experiments not in ``experiments`` (another worker owns them now).

        Examples
        --------
        >>> recent = RecentReports()
        >>> for name in ("a", "b"):
        ...     recent.add_snapshot(MetricsSnapshot(name, "m", "1", "2", 0, {}, (), "continue", ""))
        >>> recent.retain(["b"])
        >>> sorted(recent.snapshots()), recent.version
        (['b'], 3)
        """
        kept = set(experiments)
        with self._lock:
            gone = [name for name in self._snapshots if name not in kept]
            for name in gone:
                del self._snapshots[name]
            alerts = [a for a in self._alerts if a.experiment in kept]
            if gone or len(alerts) != len(self._alerts):
                self._alerts.clear()
                self._alerts.extend(alerts)
                self.version += 1

    def snapshots(self) -> dict[str, list[MetricsSnapshot]]:
        """A copy: per experiment, its kept snapshots in time order."""
        with self._lock:
            return {name: list(kept) for name, kept in self._snapshots.items()}

    def alerts(self) -> list[Alert | Verdict]:
        """A copy: the recent alerts and verdicts, oldest first."""
        with self._lock:
            return list(self._alerts)
