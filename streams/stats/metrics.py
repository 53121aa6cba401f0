"""Metric specifications: name, direction and kind of every metric the monitor can compare.

Built-in metrics (:data:`BUILTIN_METRICS`): losses, latency, error, timeout and invalid
(prediction) rates are lower-is-better; ``correct`` and ``accuracy`` higher-is-better;
``prediction`` is a numeric prediction compared as a distribution (KS); ``predicted_class``
a categorical prediction (chi-square, PSI, agreement).  Any other name (business KPIs) must
be declared with :meth:`MetricRegistry.declare` or in the experiment table
(``[[experiments.metrics]]``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

__all__ = ["BUILTIN_METRICS", "INVALID", "KINDS", "MetricRegistry", "MetricSpec"]

KINDS = ("paired", "categorical", "distribution")
INVALID = "invalid"
"""The 0/1 metric of a side whose prediction the validity gate refused."""


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """What a metric is and which way is good.

    Parameters
    ----------
    name : str
        Metric name as it appears in observations.
    higher_is_better : bool
        Direction: ``True`` for accuracy-like metrics, ``False`` for losses, latency, errors.
    kind : str
        ``"paired"`` (numeric per-request pair), ``"categorical"`` (label pair) or
        ``"distribution"`` (numeric predictions compared as distributions).
    binary : bool
        Values are 0/1 (enables McNemar and two-proportion tests).
    symmetric : bool
        Declares that under "no difference" the paired differences are symmetric about 0
        (e.g. the two models' values are exchangeable).  Then the default sequential test is the
        symmetric mixture SPRT (valid at every ``n``, heavy tails included); otherwise it is
        the mean-valid asymptotic confidence sequence (finite variance, any shape).  0/1
        metrics are symmetric under equal rates and need not declare it.
    bounds : tuple of float or None
        ``(lower, upper)`` every value lies in, if known (``binary`` implies ``(0, 1)``).  A
        bounded paired metric gets a finite, shrinking confidence sequence in the verdict even
        when live and candidate agree on every request (:class:`~streams.stats.bounded.
        BoundedCS`); an unbounded one cannot (see :mod:`streams.stats.verdict`).

    Examples
    --------
    >>> MetricSpec("revenue", higher_is_better=True).worse_alternative
    'less'
    >>> MetricSpec("error", False, binary=True).diff_bounds
    (-1.0, 1.0)
    """

    name: str
    higher_is_better: bool
    kind: str = "paired"
    binary: bool = False
    bounds: tuple[float, float] | None = None
    symmetric: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(
                f"metric {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}"
            )
        if self.bounds is not None:
            lo, hi = self.bounds
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError(
                    f"metric {self.name!r}: bounds must be finite with lower < upper, "
                    f"got {self.bounds!r}"
                )

    @property
    def diff_bounds(self) -> tuple[float, float] | None:
        """Bounds of ``cand - live`` (``None`` when the metric is unbounded)."""
        bounds = self.bounds if self.bounds is not None else (0.0, 1.0) if self.binary else None
        if bounds is None:
            return None
        lo, hi = float(bounds[0]), float(bounds[1])
        return (lo - hi, hi - lo)

    @property
    def sequential_test(self) -> str:
        """The default anytime-valid test: ``"msprt"`` where differences are symmetric under
        the null (0/1 metrics, or declared ``symmetric``), else ``"asymptotic_cs"``."""
        return "msprt" if self.binary or self.symmetric else "asymptotic_cs"

    @property
    def worse_alternative(self) -> str:
        """The scipy-style alternative (candidate vs live) that means "candidate is worse"."""
        return "less" if self.higher_is_better else "greater"


BUILTIN_METRICS: Mapping[str, MetricSpec] = {
    m.name: m
    for m in (
        MetricSpec("abs_error", False),
        MetricSpec("squared_error", False),
        MetricSpec("log_loss", False),
        MetricSpec("brier", False),
        MetricSpec("latency_ms", False),
        # What each prediction costs (Prediction version 2; paired when both sides measured
        # it): CPU ms of the call, peak memory (MiB) and model load time (s) of its process.
        MetricSpec("cpu_ms", False),
        MetricSpec("worker_memory_mb", False),
        MetricSpec("load_s", False),
        MetricSpec("error", False, binary=True),
        MetricSpec("timeout", False, binary=True),
        MetricSpec(INVALID, False, binary=True),
        MetricSpec("correct", True, binary=True),
        MetricSpec("accuracy", True, binary=True),
        MetricSpec("prediction", False, kind="distribution"),
        MetricSpec("predicted_class", False, kind="categorical"),
    )
}


class MetricRegistry:
    """Built-in metrics plus the custom ones an experiment declares.

    Examples
    --------
    >>> reg = MetricRegistry([MetricSpec("revenue", higher_is_better=True)])
    >>> reg["revenue"].higher_is_better, reg["latency_ms"].higher_is_better
    (True, False)
    >>> "clicks" in reg
    False
    """

    __slots__ = ("_specs",)

    def __init__(self, custom: Iterable[MetricSpec] = ()) -> None:
        self._specs: dict[str, MetricSpec] = dict(BUILTIN_METRICS)
        for spec in custom:
            self._specs[spec.name] = spec

    def declare(self, spec: MetricSpec) -> MetricRegistry:
        """Return a registry that also knows ``spec``."""
        return MetricRegistry([*self._specs.values(), spec])

    def __getitem__(self, name: str) -> MetricSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise KeyError(f"unknown metric {name!r}; declare it with higher_is_better") from None

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)
