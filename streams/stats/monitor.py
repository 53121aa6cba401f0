"""Rolling state of one experiment (live vs one candidate) across segments, alerts and verdicts.

The join agent's stage 2 feeds one :class:`Observation` per request to
:meth:`ExperimentMonitor.update` and periodically calls :meth:`ExperimentMonitor.evaluate`,
which returns an :class:`Evaluation`: every test per metric and segment, the alert transitions
since the previous evaluation (``FIRING`` / ``RESOLVED``, dedup key
``"<experiment>:<rule>:<segment>"``, segment ``"all"`` for the whole experiment) and the
:class:`~streams.stats.verdict.VerdictResult`.  The monitor is picklable (checkpoint it as is).

State kept: for the overall segment a battery of tests per metric (windowed fixed-horizon tests,
all behind one window per metric, and cumulative sequential ones); per segment value of the
tracked keys a two-sided sequential test per numeric metric; per rule and segment value the
rule's own test; the verdict's sequential tests.  Metric names that are neither built in nor
declared are counted in ``ignored``; numeric pairs with a NaN or infinite value (a log-loss of a
zero probability that escaped its floor, an overflow) are never fed to a statistic and are
counted per metric in ``nonfinite`` (one such value would poison a cumulative sum for good).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Self

from streams.stats.asymptotic import AsymptoticCS
from streams.stats.catalog import DIRECTIONAL_TESTS, SEQUENTIAL_TESTS, centred_effect
from streams.stats.metrics import INVALID, MetricSpec
from streams.stats.monitor_state import (
    Battery,
    Feed,
    Plan,
    TimedFeed,
    bound_updates,
    guard_stat,
    new_battery,
    result_at,
    rule_stat,
    sequential,
)
from streams.stats.monitor_types import ALL, OTHER, PROXY, Evaluation, Observation, RuleAlert
from streams.stats.multiple import benjamini_hochberg, e_bh
from streams.stats.ppi import PredictionPowered
from streams.stats.results import NonFiniteError, TestResult
from streams.stats.rules import ExperimentRules, Rule
from streams.stats.sequential import MixtureSPRT
from streams.stats.verdict import decide
from streams.stats.windows import Statistic, Window

__all__ = ["ExperimentMonitor", "rule_condition"]

_NO_LABELS: tuple[tuple[str, str], ...] = ()


class ExperimentMonitor:
    """Rolling tests, alert rules with hysteresis and the verdict for one experiment.

    Parameters
    ----------
    config : ExperimentRules or mapping
        Parsed rules, or the experiment's TOML table (parsed with
        :meth:`ExperimentRules.from_dict`).

    Examples
    --------
    >>> mon = ExperimentMonitor({"name": "exp", "primary_metric": "correct", "min_samples": 20})
    >>> for i in range(500):
    ...     _ = mon.update(Observation(i, {}, {"correct": (1.0, float(i % 3 != 0))}))
    >>> ev = mon.evaluate(now_ms=500)
    >>> ev.counts["correct"], ev.verdict.decision, [a.key for a in ev.alerts]
    (500, 'reject', ['exp:default-correct:all'])
    """

    def __init__(self, config: ExperimentRules | Mapping[str, Any]) -> None:
        cfg = config if isinstance(config, ExperimentRules) else ExperimentRules.from_dict(config)
        self.cfg = cfg
        self.keys = cfg.segment_keys()
        self.counts: dict[str, int] = {}
        self.ignored: dict[str, int] = {}
        self.nonfinite: dict[str, int] = {}  # pairs refused per metric (NaN or infinite)
        self.invalid = [0, 0.0, 0.0]  # pairs seen, live's and the candidate's invalid ones
        self._seen: dict[str, set[str]] = {k: set() for k in self.keys}
        self._battery: dict[str, Battery] = {}
        self._seg_seq: dict[tuple[str, str], MixtureSPRT | AsymptoticCS] = {}
        self._rules_by_metric: dict[str, list[Rule]] = {}
        for rule in cfg.rules:
            self._rules_by_metric.setdefault(rule.metric, []).append(rule)
        self._rule_stats: dict[tuple[str, str], Statistic | Window] = {}
        self._hyst: dict[tuple[str, str], list[int]] = {}
        a_v = cfg.alpha / (1 + len(cfg.guardrails))
        primary = cfg.primary_metric
        # estimated verdict: the primary's alpha split between its labelled sequence and the
        # planned looks of its prediction-powered estimate (Bonferroni), so the two hold a_v
        self._a_est = a_v / 2.0 if cfg.estimated_verdict else 0.0
        self._v_est: TestResult | None = None  # latest planned look (kept once decisive)
        self._v_looks = 0
        self._v_primary = sequential(cfg, primary, a_v - self._a_est) if primary else None
        self._v_guards = {g.metric: guard_stat(cfg, g.metric, a_v) for g in cfg.guardrails}
        self._ppi = {
            m: (m + PROXY, PredictionPowered(alpha=cfg.alpha, min_labelled=cfg.min_samples))
            for m in cfg.proxies
        }
        self._forget_plans()

    def _forget_plans(self) -> None:
        # Caches derived from the state above (rebuilt as metrics and segment values appear).
        self._plans: tuple[dict[str, Plan], dict[str, Plan]] = ({}, {})
        self._label_of: dict[str, dict[str, tuple[str, str]]] = {
            k: {v: (k, f"{k}={v}") for v in seen} for k, seen in self._seen.items()
        }

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_plans", "_label_of")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("nonfinite", {})  # checkpoints written before it existed
        self.__dict__.setdefault("invalid", [0, 0.0, 0.0])
        self.__dict__.setdefault("_ppi", {})
        for key, value in (("_a_est", 0.0), ("_v_est", None), ("_v_looks", 0)):
            self.__dict__.setdefault(key, value)
        self._forget_plans()

    # ------------------------------------------------------------------ update
    def _labels(self, tags: Mapping[str, str]) -> list[tuple[str, str]]:
        out = []
        for k, known in self._label_of.items():
            v = tags.get(k)
            if v is None:
                continue
            label = known.get(v)
            if label is None:
                seen = self._seen[k]
                if len(seen) >= self.cfg.max_segment_values:
                    label = (k, f"{k}={OTHER}")  # not cached: the values beyond the cap
                else:
                    seen.add(v)
                    label = known[v] = (k, f"{k}={v}")
            out.append(label)
        return out

    def update(self, obs: Observation) -> Self:
        """Add one request's observation."""
        return self.record(obs.timestamp_ms, obs.segments, obs.paired, obs.categorical)

    def record(
        self,
        timestamp_ms: int,
        segments: Mapping[str, str],
        paired: Mapping[str, tuple[float, float]],
        categorical: Mapping[str, tuple[str, str]],
    ) -> Self:
        """``update(Observation(timestamp_ms, segments, paired, categorical))``, without
        building the observation (join stage 2 calls this for every event)."""
        t = timestamp_ms / 1000.0
        labels = self._labels(segments) if self.keys else _NO_LABELS
        if paired:
            invalid = paired.get(INVALID)
            if invalid is not None:
                tally = self.invalid
                tally[0] += 1
                tally[1] += invalid[0]
                tally[2] += invalid[1]
            if self._ppi:
                self._feed_ppi(paired)
            self._feed(paired, True, t, labels)
        if categorical:
            self._feed(categorical, False, t, labels)
        return self

    def _feed(
        self,
        values: Mapping[str, tuple[Any, Any]],
        numeric: bool,
        t: float,
        labels: Sequence[tuple[str, str]],
    ) -> None:
        plans = self._plans[0 if numeric else 1]
        for metric, (x, y) in values.items():
            plan = plans.get(metric) or self._plan(metric, numeric, labels)
            counter = plan.counter
            if counter is None:
                continue
            if numeric:
                d = y - x
                q = d * d
                if q - q:  # nan unless x, y, d and d**2 are finite: never fed
                    self.nonfinite[metric] = self.nonfinite.get(metric, 0) + 1
                    continue
            counter[metric] += 1
            for feed in plan.pairs:
                feed(x, y)
            for timed in plan.timed:
                timed(x, y, t)
            if labels and plan.segmented:
                labelled = plan.labelled
                for label in labels:
                    feeds, timed_feeds = labelled.get(label) or self._label_plan(
                        plan, metric, labels, label
                    )
                    for feed in feeds:
                        feed(x, y)
                    for timed in timed_feeds:
                        timed(x, y, t)

    def _feed_ppi(self, paired: Mapping[str, tuple[float, float]]) -> None:
        """Proxies of every paired request, and (metric, proxy) of the labelled ones."""
        for metric, (name, ppi) in self._ppi.items():
            proxy = paired.get(name)
            if proxy is None:
                continue
            value = paired.get(metric)
            try:
                if value is None:
                    ppi.update_proxy(*proxy)
                else:
                    ppi.update(value[0], value[1], *proxy)
            except NonFiniteError:
                self.nonfinite[name] = self.nonfinite.get(name, 0) + 1
            if self._a_est and metric == self.cfg.primary_metric:
                self._ppi_look(ppi)

    def _ppi_look(self, ppi: PredictionPowered) -> None:
        """Take the estimated verdict's next planned look when the paired requests reach a
        multiple of ``ppi_look_every`` and ``min_labelled`` labels are in (``ppi.looks``
        looks at most, each at ``alpha / looks``: when they fall depends on the traffic and
        on which requests are labelled, never on their values, so the union bound holds);
        the first look whose interval excludes 0 ends the schedule and its result is kept."""
        done = self._v_looks
        if done >= ppi.looks or ppi.n_paired % self.cfg.ppi_look_every or ppi.n < ppi.min_labelled:
            return
        last = self._v_est
        if last is not None and not last.ci[0] <= 0.0 <= last.ci[1]:
            return
        self._v_looks = done + 1
        self._v_est = ppi.get(self._a_est)

    def _plan(self, metric: str, numeric: bool, labels: Sequence[tuple[str, str]]) -> Plan:
        """Resolve (creating what the first update of ``metric`` creates) where it goes."""
        if numeric and metric.endswith(PROXY) and metric[: -len(PROXY)] in self._ppi:
            plan = Plan(None)  # fed to the prediction-powered estimate only
        elif metric not in self.cfg.metrics:
            self.ignored.setdefault(metric, 0)
            plan = Plan(self.ignored)
        elif metric == INVALID:
            plan = self._lean_plan(metric)
        else:
            spec = self.cfg.metrics[metric]
            if (spec.kind == "categorical") == numeric:
                plan = Plan(None)
            else:
                self.counts.setdefault(metric, 0)
                self._create(metric, spec, labels)
                bat = self._battery[metric]
                stats: list[Statistic | Window] = [*bat.direct]
                if bat.window is not None:
                    stats.append(bat.window)
                if spec.kind == "paired":
                    if metric == self.cfg.primary_metric and self._v_primary is not None:
                        stats.append(self._v_primary)
                    if metric in self._v_guards:
                        stats.append(self._v_guards[metric])  # type: ignore[arg-type]
                rules = self._rules_by_metric.get(metric, [])
                stats += [self._rule_stats[(rule.name, ALL)] for rule in rules]
                pairs, timed = bound_updates(stats)
                segmented = spec.kind == "paired" or any(rule.segments for rule in rules)
                plan = Plan(self.counts, pairs, timed, segmented)
        self._plans[0 if numeric else 1][metric] = plan
        return plan

    def _lean_plan(self, metric: str) -> Plan:
        """Every pair has the 0/1 ``invalid`` metric: it feeds only its rules (overall), the
        verdict's statistics that name it and the tally of :attr:`invalid`, no battery."""
        self.counts.setdefault(metric, 0)
        spec = self.cfg.metrics[metric]
        stats: list[Statistic | Window] = []
        for rule in self._rules_by_metric.get(metric, ()):
            key = (rule.name, ALL)
            if key not in self._rule_stats:
                self._rule_stats[key] = rule_stat(self.cfg, rule, spec)
            stats.append(self._rule_stats[key])
        if metric == self.cfg.primary_metric and self._v_primary is not None:
            stats.append(self._v_primary)
        if metric in self._v_guards:
            stats.append(self._v_guards[metric])  # type: ignore[arg-type]
        pairs, timed = bound_updates(stats)
        return Plan(self.counts, pairs, timed, False)

    def _label_plan(
        self, plan: Plan, metric: str, labels: Sequence[tuple[str, str]], label: tuple[str, str]
    ) -> tuple[tuple[Feed, ...], tuple[TimedFeed, ...]]:
        """Resolve where ``metric`` goes for the segment labels of this update."""
        spec = self.cfg.metrics[metric]
        self._create(metric, spec, labels)
        for key, seg in labels:
            if (key, seg) in plan.labelled:
                continue
            stats: list[Statistic | Window] = []
            if spec.kind == "paired":
                stats.append(self._seg_seq[(metric, seg)])
            for rule in self._rules_by_metric.get(metric, ()):
                if key in rule.segments:
                    stats.append(self._rule_stats[(rule.name, seg)])
            plan.labelled[(key, seg)] = bound_updates(stats)
        return plan.labelled[label]

    def _create(self, metric: str, spec: MetricSpec, labels: Sequence[tuple[str, str]]) -> None:
        """Create the state an update of ``metric`` with ``labels`` needs and lacks, in the
        order it always was created (evaluations list results and alerts in that order)."""
        if metric not in self._battery:
            self._battery[metric] = new_battery(self.cfg, metric, spec)
        if spec.kind == "paired":
            for _, label in labels:
                if (metric, label) not in self._seg_seq:
                    self._seg_seq[(metric, label)] = sequential(self.cfg, metric, self.cfg.alpha)
        for rule in self._rules_by_metric.get(metric, ()):
            for seg in [ALL] + [lab for k, lab in labels if k in rule.segments]:
                if (rule.name, seg) not in self._rule_stats:
                    self._rule_stats[(rule.name, seg)] = rule_stat(self.cfg, rule, spec)

    # ---------------------------------------------------------------- evaluate
    def evaluate(self, now_ms: int) -> Evaluation:
        """Run every test, apply the rules (with hysteresis) and decide the verdict."""
        now = now_ms / 1000.0
        results: dict[str, dict[str, dict[str, TestResult]]] = {}
        for metric, bat in self._battery.items():
            results[metric] = {ALL: bat.results(now)}
        for metric, (_, ppi) in self._ppi.items():
            results.setdefault(metric, {}).setdefault(ALL, {})["ppi"] = ppi.get()
        for (metric, label), seq in self._seg_seq.items():
            res = seq.get()
            results[metric].setdefault(label, {})[res.test] = res
        fixed = [
            (m, s, k, r.pvalue)
            for m, segs in results.items()
            for s, rs in segs.items()
            for k, r in rs.items()
            if r.test not in SEQUENTIAL_TESTS
        ]
        q = benjamini_hochberg([p for *_, p in fixed])
        qvalues = {(m, s, k): qv for (m, s, k, _), qv in zip(fixed, q, strict=True)}
        rule_results: dict[str, dict[str, TestResult]] = {}
        alerts: list[RuleAlert] = []
        for (rname, seg), st in self._rule_stats.items():
            rule = next(r for r in self.cfg.rules if r.name == rname)
            res = result_at(st, now)
            rule_results.setdefault(rname, {})[seg] = res
            alert = self._hysteresis(rule, seg, res, now_ms)
            if alert is not None:
                alerts.append(alert)
        seq_keys = [
            (r, s)
            for r, segs in rule_results.items()
            for s, res in segs.items()
            if res.evalue is not None
        ]
        ebh_rej = e_bh([rule_results[r][s].evalue or 0.0 for r, s in seq_keys], self.cfg.alpha)
        firing = tuple(sorted(self._key(r, s) for (r, s), h in self._hyst.items() if h[0]))
        verdict = decide(self.cfg, self._v_primary, self._v_guards, self._v_est, self.invalid)
        return Evaluation(
            self.cfg.name,
            now_ms,
            dict(self.counts),
            results,
            rule_results,
            qvalues,
            dict(zip(seq_keys, ebh_rej, strict=True)),
            tuple(alerts),
            firing,
            verdict,
            dict(self.nonfinite),
        )

    def evaluated_state(self) -> tuple[object, ...]:
        """What :meth:`evaluate` may change that later results depend on: each rule's
        hysteresis (firing, hits, misses), and what each time window holds (its count and
        newest time: evictions, times brought back to the clock). An evaluation that
        leaves it equal changed only what the next one recomputes the same way (pairs a
        window owed its batch statistics), so a checkpoint may skip the experiment."""
        windows = [b.window for b in self._battery.values() if b.window is not None]
        windows += [s for s in self._rule_stats.values() if isinstance(s, Window)]
        held = [(w.n, w._ts[-1] if w._ts else None) for w in windows if w.seconds is not None]
        return (*map(tuple, self._hyst.values()), *held)

    def _key(self, rule: str, seg: str) -> str:
        return f"{self.cfg.name}:{rule}:{seg}"

    def _hysteresis(self, rule: Rule, seg: str, res: TestResult, now_ms: int) -> RuleAlert | None:
        alpha = self.cfg.effective_alpha(rule)
        cond = rule_condition(rule, self.cfg.metrics[rule.metric], res, alpha)
        h = self._hyst.setdefault((rule.name, seg), [0, 0, 0])  # firing, hits, misses
        # hits and misses stop at the count that matters, so an experiment evaluated again
        # and again without new data soon stops changing (checkpoints skip it then)
        if cond:
            h[1], h[2] = min(h[1] + 1, rule.fire_after), 0
            if not h[0] and h[1] >= rule.fire_after:
                h[0] = 1
                return self._alert("FIRING", rule, seg, res, alpha, now_ms)
        else:
            h[1], h[2] = 0, min(h[2] + 1, rule.resolve_after)
            if h[0] and h[2] >= rule.resolve_after:
                h[0] = 0
                return self._alert("RESOLVED", rule, seg, res, alpha, now_ms)
        return None

    def _alert(
        self, state: str, rule: Rule, seg: str, res: TestResult, alpha: float, now_ms: int
    ) -> RuleAlert:
        msg = (
            f"[{rule.severity}] {self.cfg.name}: rule {rule.name} {state} on {rule.metric} "
            f"({rule.direction}) segment {seg}: {res.explain()}; alpha={alpha:.3g} "
            f"min_effect={rule.min_effect:g}"
        )
        return RuleAlert(
            self._key(rule.name, seg),
            state,
            self.cfg.name,
            rule.name,
            rule.metric,
            seg,
            rule.severity,
            now_ms,
            alpha,
            res,
            msg,
        )


def rule_condition(rule: Rule, spec: MetricSpec, res: TestResult, alpha: float) -> bool:
    """Whether ``res`` meets the rule: enough samples, significant, and beyond ``min_effect``."""
    if res.n < rule.min_samples:
        return False
    c = centred_effect(rule.test, res.effect)
    if math.isnan(c):
        return False
    directional = rule.test in DIRECTIONAL_TESTS and rule.direction != "different"
    sign = 1.0 if rule.alternative(spec) == "greater" else -1.0
    if rule.test in ("quantile_ratio", "quantile_cs"):
        lo, hi = (b - 1.0 for b in res.ci)
        if directional:
            return (lo if sign > 0 else -hi) > rule.min_effect
        return lo > rule.min_effect or -hi > rule.min_effect
    beyond = sign * c > rule.min_effect if directional else abs(c) > rule.min_effect
    return beyond and res.significant(alpha)
