"""Metric specifications: name, direction and kind of every metric the monitor can compare.

Built-in metrics (:data:`BUILTIN_METRICS`): losses, latency, error and timeout rates are
lower-is-better; ``correct`` and ``accuracy`` higher-is-better; ``prediction`` is a numeric
prediction compared as a distribution (KS); ``predicted_class`` a categorical prediction
(chi-square, PSI, agreement).  Any other name (business KPIs) must be declared with
:meth:`MetricRegistry.declare` or in the experiment table (``[[experiments.metrics]]``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

__all__ = ["BUILTIN_METRICS", "KINDS", "MetricRegistry", "MetricSpec"]

KINDS = ("paired", "categorical", "distribution")


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

    Examples
    --------
    >>> MetricSpec("revenue", higher_is_better=True).worse_alternative
    'less'
    """

    name: str
    higher_is_better: bool
    kind: str = "paired"
    binary: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(
                f"metric {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}"
            )

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
        MetricSpec("error", False, binary=True),
        MetricSpec("timeout", False, binary=True),
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
