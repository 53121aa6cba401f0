"""The statistics an :class:`~streams.stats.monitor.ExperimentMonitor` keeps, built from
its rules, and the bound updates that feed them.

:class:`Battery` holds one metric's reported tests (the windowed ones behind one shared
window); :class:`Plan` is where one metric's pairs go, resolved once; :func:`new_battery`,
:func:`rule_stat`, :func:`sequential` and :func:`guard_stat` build the statistics from an
:class:`~streams.stats.rules.ExperimentRules`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streams.stats.asymptotic import AsymptoticCS
from streams.stats.bounded import BoundedCS
from streams.stats.catalog import SEQUENTIAL_TESTS, battery, make_test
from streams.stats.metrics import MetricSpec
from streams.stats.results import TestResult
from streams.stats.rules import ExperimentRules, Rule
from streams.stats.sequential import MixtureSPRT
from streams.stats.verdict import GuardStat
from streams.stats.windows import Statistic, Window, share_state

__all__ = [
    "Battery",
    "Feed",
    "Plan",
    "TimedFeed",
    "bound_updates",
    "guard_stat",
    "new_battery",
    "result_at",
    "rule_stat",
    "sequential",
]


def _window(stat: Statistic, size: int | None, seconds: float | None) -> Statistic | Window:
    if size is None and seconds is None:
        return stat
    return Window(stat, size=size, seconds=seconds)


Feed = Callable[[Any, Any], object]
TimedFeed = Callable[[Any, Any, float], object]


class Battery:
    """The tests reported for one metric overall: the cumulative ones, and the others behind
    one window shared by all of them (so one buffer per metric, and sorted samples kept once,
    see :func:`~streams.stats.windows.share_state`)."""

    __slots__ = ("direct", "tests", "window", "windowed")

    def __init__(
        self, tests: dict[str, Statistic], windowed: list[str], window: Window | None
    ) -> None:
        self.tests = tests
        self.windowed = frozenset(windowed) if window is not None else frozenset()
        self.window = window
        self._bind()

    def _bind(self) -> None:
        # The statistics fed directly (the windowed ones are fed through ``window``).
        self.direct = tuple(s for k, s in self.tests.items() if k not in self.windowed)

    def __getstate__(self) -> dict[str, Any]:
        return {"tests": self.tests, "windowed": self.windowed, "window": self.window}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.tests, self.windowed, self.window = state["tests"], state["windowed"], state["window"]
        self._bind()

    def results(self, now: float) -> dict[str, TestResult]:
        """Every test's result at ``now`` (seconds), in the battery's order."""
        window, windowed = self.window, self.windowed
        if window is None:
            return {k: s.get() for k, s in self.tests.items()}
        label = window.expire(now).label
        return {
            k: s.get().with_window(label) if k in windowed else s.get()
            for k, s in self.tests.items()
        }


class Plan:
    """Where the pairs of one metric go, resolved once instead of on every update.

    ``counter`` is the dict counting the metric (``counts``; ``ignored`` for an unknown
    metric; None when the metric has the other kind and is skipped), ``pairs`` and ``timed``
    the updates for the overall segment, ``labelled`` those of each segment label (filled as
    labels appear); ``segmented`` whether any exist.
    """

    __slots__ = ("counter", "labelled", "pairs", "segmented", "timed")

    def __init__(
        self,
        counter: dict[str, int] | None,
        pairs: tuple[Feed, ...] = (),
        timed: tuple[TimedFeed, ...] = (),
        segmented: bool = False,
    ) -> None:
        self.counter = counter
        self.pairs = pairs
        self.timed = timed
        self.segmented = segmented
        self.labelled: dict[tuple[str, str], tuple[tuple[Feed, ...], tuple[TimedFeed, ...]]] = {}


def bound_updates(
    stats: list[Statistic | Window],
) -> tuple[tuple[Feed, ...], tuple[TimedFeed, ...]]:
    """The bound ``update`` methods of ``stats``, all fed the same pairs: windows take the
    time, statistics do not (and those that can share their state are fed once)."""
    windows = [s for s in stats if isinstance(s, Window)]
    fed = share_state(s for s in stats if not isinstance(s, Window))
    return tuple(s.update for s in fed), tuple(w.update for w in windows)


def new_battery(cfg: ExperimentRules, name: str, spec: MetricSpec) -> Battery:
    """The battery of tests reported for metric ``name`` overall."""
    tests: dict[str, Statistic] = {}
    windowed: list[str] = []
    for key, test, q in battery(name, spec.kind, spec.binary, spec.sequential_test):
        tests[key] = make_test(
            test,
            alpha=cfg.alpha,
            min_samples=cfg.min_samples,
            quantile=q or 0.95,
            tune_n=cfg.tune_n,
        )
        if test not in SEQUENTIAL_TESTS:
            windowed.append(key)
    window = None
    if windowed and (cfg.window is not None or cfg.window_seconds is not None):
        fed = share_state(tests[k] for k in windowed)
        window = Window(*fed, size=cfg.window, seconds=cfg.window_seconds)
    return Battery(tests, windowed, window)


def rule_stat(cfg: ExperimentRules, rule: Rule, spec: MetricSpec) -> Statistic | Window:
    """The statistic that judges ``rule`` for one segment (windowed if fixed-horizon)."""
    alt = rule.alternative(spec)
    null = {"greater": rule.min_effect, "less": -rule.min_effect}.get(alt, 0.0)
    if rule.test == "agreement":
        null = rule.min_effect
    stat = make_test(
        rule.test,
        alt,
        null=null,
        alpha=cfg.effective_alpha(rule),
        min_samples=rule.min_samples,
        quantile=rule.quantile,
        tune_n=cfg.tune_n,
    )
    return _window(stat, rule.window, rule.window_seconds) if rule.fixed_horizon else stat


def sequential(cfg: ExperimentRules, metric: str, alpha: float) -> MixtureSPRT | AsymptoticCS:
    """Two-sided anytime-valid test of ``metric``'s mean difference: the symmetric mixture
    SPRT where the metric's differences are symmetric under the null, else the asymptotic
    confidence sequence (see :attr:`MetricSpec.sequential_test`)."""
    kind = MixtureSPRT if cfg.metrics[metric].sequential_test == "msprt" else AsymptoticCS
    return kind(alpha=alpha, min_samples=cfg.min_samples, tune_n=cfg.tune_n)


def guard_stat(cfg: ExperimentRules, metric: str, alpha: float) -> GuardStat:
    """Bounded metrics: empirical-Bernstein CS (finite at zero variance); else the metric's
    sequential test."""
    bounds = cfg.metrics[metric].diff_bounds
    if bounds is not None:
        return BoundedCS(*bounds, alpha=alpha, min_samples=cfg.min_samples)
    return sequential(cfg, metric, alpha)


def result_at(stat: Statistic | Window, now: float) -> TestResult:
    """``stat``'s result at ``now`` (seconds), a window first forgetting what expired."""
    if isinstance(stat, Window):
        stat.expire(now)
    return stat.get()
