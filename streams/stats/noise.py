"""A/A noise floor: how much a (stochastic) model disagrees with itself, as rule tolerances.

Run an A/A experiment -- live compared with itself (e.g. a re-run with another seed) or with a
replica -- through an :class:`~streams.stats.monitor.ExperimentMonitor`, then
:func:`noise_floor` turns every test's A/A interval into a tolerance: the largest centred effect
(see :mod:`streams.stats.catalog`) still consistent with the A/A data.  Use the tolerances as
``min_effect`` (:meth:`NoiseFloor.apply`) so that differences no larger than the model's own
noise never alert.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from streams.stats.catalog import centred_effect
from streams.stats.monitor import ExperimentMonitor
from streams.stats.monitor_types import ALL, Observation
from streams.stats.results import TestResult
from streams.stats.rules import ExperimentRules

__all__ = ["NoiseFloor", "Tolerance", "noise_floor"]


@dataclass(frozen=True, slots=True)
class Tolerance:
    """A/A tolerance of one (metric, test): the observed centred effect and its bound."""

    metric: str
    test: str
    effect: float
    tolerance: float
    n: int


@dataclass(frozen=True, slots=True)
class NoiseFloor:
    """Per (metric, test) tolerances measured on an A/A run.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(0)
    >>> obs = [Observation(i, {}, {"log_loss": (rng.random(), rng.random())},
    ...                    {"predicted_class": ("a", "a" if rng.random() < 0.97 else "b")})
    ...        for i in range(2000)]
    >>> floor = noise_floor(obs)
    >>> 0.0 < floor.min_effect("log_loss") < 0.05
    True
    >>> 0.02 < floor.min_effect("predicted_class", "agreement") < 0.05
    True
    """

    tolerances: Mapping[tuple[str, str], Tolerance]

    def min_effect(self, metric: str, test: str = "msprt") -> float:
        """Tolerance for ``test`` on ``metric`` (0 if the A/A run did not measure it)."""
        tol = self.tolerances.get((metric, test))
        return tol.tolerance if tol is not None else 0.0

    def apply(self, cfg: ExperimentRules, multiplier: float = 1.0) -> ExperimentRules:
        """``cfg`` with every rule's ``min_effect`` raised to at least ``multiplier`` x floor."""
        rules = tuple(
            replace(r, min_effect=max(r.min_effect, multiplier * self.min_effect(r.metric, r.test)))
            for r in cfg.rules
        )
        return replace(cfg, rules=rules)


def _tolerance(metric: str, key: str, res: TestResult) -> Tolerance | None:
    lo, hi = res.ci
    if math.isnan(res.effect) or math.isnan(lo) or math.isnan(hi):
        return None
    c = centred_effect(res.test, res.effect)
    clo, chi = sorted((centred_effect(res.test, lo), centred_effect(res.test, hi)))
    bound = max(abs(clo), abs(chi), abs(c))
    if math.isinf(bound):
        return None
    return Tolerance(metric, key, c, bound, res.n)


def noise_floor(
    source: ExperimentMonitor | Iterable[Observation],
    config: ExperimentRules | None = None,
    now_ms: int | None = None,
) -> NoiseFloor:
    """Tolerances from an A/A monitor, or from A/A observations (fed to a fresh monitor).

    The ``msprt`` and ``asymptotic_cs`` tolerance of a numeric metric is the bound of the
    fixed-horizon interval of its mean difference (``paired_t``, or ``mcnemar`` /
    ``two_proportions`` for 0/1 metrics).
    """
    if isinstance(source, ExperimentMonitor):
        mon = source
    else:
        mon = ExperimentMonitor(config or ExperimentRules(name="aa"))
        last = 0
        for obs in source:
            mon.update(obs)
            last = obs.timestamp_ms
        now_ms = last if now_ms is None else now_ms
    ev = mon.evaluate(now_ms if now_ms is not None else 0)
    tols: dict[tuple[str, str], Tolerance] = {}
    for metric, segs in ev.results.items():
        for key, res in segs.get(ALL, {}).items():
            tol = _tolerance(metric, key, res)
            if tol is not None:
                tols[(metric, key)] = tol
                tols.setdefault((metric, res.test), tol)
        for src in ("paired_t", "mcnemar", "two_proportions"):
            if (metric, src) in tols:
                for seq in ("msprt", "asymptotic_cs"):
                    tols[(metric, seq)] = replace(tols[(metric, src)], test=seq)
                break
    return NoiseFloor(tols)
