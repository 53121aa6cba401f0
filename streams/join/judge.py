"""Join stage 2, pure: fold join events into one monitor per experiment and report on them.

Events are deduplicated by :attr:`JoinEvent.dedup_key`, so a stage-1 re-emission after a
crash never counts twice. :meth:`Judge.report` turns the statistics core's evaluation into
the records published on the metrics and alerts topics.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass

from streams.join.experiments import Experiment, ExperimentsFile
from streams.join.observe import TIMEOUTS, metric_values
from streams.records import (
    Alert,
    AlertState,
    Decision,
    JoinEvent,
    JoinKind,
    MetricResult,
    MetricsSnapshot,
    Verdict,
)
from streams.stats import Evaluation, ExperimentMonitor, RuleAlert, TestResult

__all__ = ["COUNT_NAMES", "GUARDRAIL", "ExperimentState", "Judge", "Report"]

log = logging.getLogger("streams.join")

COUNT_NAMES = (
    "paired",
    "labelled",
    "expired_no_shadow",
    "expired_no_live",
    "expired_no_label",
    "expired_label_unknown",
    "duplicates_dropped",
)


_EXPIRED = JoinKind.EXPIRED  # an enum member lookup is slow
_COUNTED = {kind: kind.value.lower() for kind in JoinKind if kind is not _EXPIRED}


@dataclass(frozen=True, slots=True)
class ExperimentState:
    """All a :class:`Judge` holds for one experiment: what a checkpoint saves."""

    monitor: ExperimentMonitor
    counts: Counter[str]
    decision: str | None
    """The last decision published (None: none yet)."""


@dataclass(frozen=True, slots=True)
class Report:
    """What one evaluation of one experiment publishes."""

    snapshot: MetricsSnapshot
    alerts: tuple[Alert, ...]
    verdict: Verdict | None
    """Set when the decision changed since the last report (or on the first one)."""
    evaluation: Evaluation


class Judge:
    """Stage 2 for the experiments of one experiments file.

    Parameters
    ----------
    experiments : ExperimentsFile
        The experiments judged; events naming another one are counted and dropped.
    dedup : bool
        Drop events whose :attr:`JoinEvent.dedup_key` was applied before (the default).
        ``False`` keeps no set of seen keys, for a caller that already delivers every
        event exactly once: no memory grows with the number of events, and
        :meth:`apply` never reports a duplicate.

    Examples
    --------
    >>> from streams.records import Prediction, Role
    >>> exps = ExperimentsFile.parse('''
    ... [[experiments]]
    ... name = "e"
    ... model = "m"
    ... live_version = "v1"
    ... candidate = "v2"
    ... ''')
    >>> judge = Judge(exps)
    >>> live = Prediction("r1", "m", "v1", Role.LIVE, 0, 1.0)
    >>> cand = Prediction("r1", "m", "v2", Role.SHADOW, 0, 1.5)
    >>> event = JoinEvent(JoinKind.PAIRED, "e", "r1", 0, live, cand)
    >>> judge.apply(event), judge.apply(event)
    (True, False)
    >>> judge.counts["e"]["paired"], judge.counts["e"]["duplicates_dropped"]
    (1, 1)
    >>> trusting = Judge(exps, dedup=False)
    >>> trusting.apply(event), trusting.apply(event), trusting.counts["e"]["paired"]
    (True, True, 2)
    """

    def __init__(self, experiments: ExperimentsFile, dedup: bool = True) -> None:
        self.experiments = {e.name: e for e in experiments.experiments}
        self.monitors = {name: ExperimentMonitor(e.rules) for name, e in self.experiments.items()}
        self.counts: dict[str, Counter[str]] = {name: Counter() for name in self.experiments}
        self.unknown_experiment = 0
        self._seen: set[int] | None = set() if dedup else None
        self._decisions: dict[str, str] = {}
        self.clock_skew: Counter[str] = Counter()
        """Events per experiment whose time :meth:`apply` clamped, since the caller last
        cleared it (stage 2 moves them to ``shadow_join_clock_skew_total``)."""
        self.invalid: Counter[tuple[str, str, str]] = Counter()
        """Invalid predictions and labels per ``(experiment, version or "label", reason)``
        since the caller last cleared it (stage 2 moves them to
        ``shadow_join_invalid_total``); the snapshot counts them as ``invalid:<version>:
        <reason>`` and ``invalid:label:<reason>``."""
        self.changed: set[str] = set()
        """The experiments whose state an event or a report changed since the caller last
        cleared it (stage 2 checkpoints only those): a report counts when it publishes
        a verdict or changes what :meth:`ExperimentMonitor.evaluated_state` shows."""
        join = experiments.join
        self._behind_ms = int(join.label_ttl_s * 1000)
        self._ahead_ms = int(join.max_skew_s * 1000)

    def apply(self, event: JoinEvent, now_ms: int | None = None) -> bool:
        """Fold one event in; False when it was a duplicate (or names no experiment).

        With the stage's clock ``now_ms``, an event time outside ``[now - label_ttl_s,
        now + max_skew_s]`` is clamped into it for the time windows and counted in
        :attr:`clock_skew`: one bad clock cannot hold a window's eviction back."""
        name = event.experiment
        experiment = self.experiments.get(name)
        if experiment is None:
            self.unknown_experiment += 1
            return False
        self.changed.add(name)
        counts = self.counts[name]
        seen = self._seen
        if seen is not None:
            key = hash(event.dedup_key)
            if key in seen:
                counts["duplicates_dropped"] += 1
                return False
            seen.add(key)
        kind = event.kind
        if kind is _EXPIRED:
            counts[f"expired_{event.reason}"] += 1
            return True
        counts[_COUNTED[kind]] += 1
        found = metric_values(event, experiment)
        if found is not None:
            paired, categorical, errors, invalid = found
            for failure in errors:
                counter = failure.counter
                counts[counter] += 1
                if counts[counter] == 1:  # one line per function, not one per request
                    log.warning("join: %s on a request of %s: %s (counted in %s; its other "
                                "metrics stand)", counter.partition(":")[2], name,
                                failure.detail, counter)  # fmt: skip
            for what in invalid:
                counts[f"invalid:{what}"] += 1
                version, _, reason = what.rpartition(":")
                self.invalid[(name, version, reason)] += 1
            timestamp_ms = event.timestamp_ms
            if now_ms is not None:
                clamped = min(max(timestamp_ms, now_ms - self._behind_ms), now_ms + self._ahead_ms)
                if clamped != timestamp_ms:
                    self.clock_skew[name] += 1
                    timestamp_ms = clamped
            self.monitors[name].record(timestamp_ms, event.segments, paired, categorical)
        return True

    def state(self, name: str) -> ExperimentState:
        """One experiment's state (live objects: a checkpoint writes a copy)."""
        return ExperimentState(self.monitors[name], self.counts[name], self._decisions.get(name))

    def restore(self, name: str, state: ExperimentState) -> None:
        """Continue ``name`` from ``state`` (from :meth:`state`, possibly of another Judge)."""
        self.monitors[name] = state.monitor
        self.counts[name] = state.counts
        self.changed.discard(name)
        if state.decision is None:
            self._decisions.pop(name, None)
        else:
            self._decisions[name] = state.decision

    def report(self, name: str, now_ms: int) -> Report:
        """Evaluate one experiment: its snapshot, alert transitions and verdict change."""
        experiment = self.experiments[name]
        monitor = self.monitors[name]
        before = monitor.evaluated_state()
        evaluation = monitor.evaluate(now_ms)
        verdict = evaluation.verdict
        decision = verdict.decision.upper()
        published: Verdict | None = None
        if self._decisions.get(name) != decision:
            self._decisions[name] = decision
            published = Verdict(
                name,
                Decision(decision),
                verdict.reason,
                now_ms,
                None
                if verdict.primary is None
                else _result(verdict.primary, experiment.rules.primary_metric or "", ""),
                tuple(_result(g.result, g.metric, "") for g in verdict.guardrails),
            )
        counts = {count: self.counts[name][count] for count in COUNT_NAMES}
        counts.update(
            {
                k: v
                for k, v in sorted(self.counts[name].items())
                if k.startswith(("errors:", "invalid:", TIMEOUTS))
            }
        )
        # Pairs with a NaN or infinite value, refused by the statistics core (never fed).
        counts.update({f"nonfinite:{m}": v for m, v in sorted(evaluation.nonfinite.items())})
        snapshot = MetricsSnapshot(
            name,
            experiment.model,
            experiment.live_version,
            experiment.candidate,
            now_ms,
            counts,
            _results(evaluation)
            # Each guardrail's interval now (the verdict record only goes out on a change).
            + tuple(_result(g.result, g.metric, "", GUARDRAIL) for g in verdict.guardrails),
            verdict.decision,
            verdict.reason,
        )
        alerts = tuple(_alert(a, experiment) for a in evaluation.alerts)
        if published is not None or monitor.evaluated_state() != before:
            self.changed.add(name)  # an alert moves the hysteresis too
        return Report(snapshot, alerts, published, evaluation)


GUARDRAIL = "guardrail"
"""The test name of a guardrail's result in a snapshot (its interval of candidate - live)."""


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _result(result: TestResult, metric: str, segment: str, test: str | None = None) -> MetricResult:
    low, high = result.ci
    return MetricResult(
        metric,
        test or result.test,
        result.n,
        segment,
        _finite(result.statistic),
        _finite(result.pvalue),
        _finite(result.evalue),
        _finite(result.effect),
        _finite(low),
        _finite(high),
        _finite(result.live_value),
        _finite(result.candidate_value),
    )


def _results(evaluation: Evaluation) -> tuple[MetricResult, ...]:
    return tuple(
        _result(result, metric, "" if segment == "all" else segment, test)
        for metric, segments in sorted(evaluation.results.items())
        for segment, tests in sorted(segments.items())
        for test, result in sorted(tests.items())
    )


def _alert(alert: RuleAlert, experiment: Experiment) -> Alert:
    rule = next(r for r in experiment.rules.rules if r.name == alert.rule)
    segment = "" if alert.segment == "all" else alert.segment
    return Alert(
        alert.key,
        AlertState(alert.state),
        alert.experiment,
        alert.rule,
        alert.severity,
        rule.direction,
        _result(alert.result, alert.metric, segment),
        alert.message,
        alert.timestamp_ms,
    )
