"""Reading an experiment's TOML table: typed fields, and :class:`ConfigError` naming the bad one.

The experiments-file reference is the docstring of :mod:`streams.stats.rules`, whose
``from_dict`` constructors read their tables with :class:`TableReader`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from streams.stats.metrics import KINDS, MetricSpec

__all__ = ["ConfigError", "TableReader", "metric_spec", "tables"]


class ConfigError(ValueError):
    """Invalid experiment configuration; the message names the rule and the field."""


class TableReader:
    """Typed field access that raises :class:`ConfigError` with the location."""

    def __init__(self, d: Mapping[str, Any], where: str) -> None:
        if not isinstance(d, Mapping):
            raise ConfigError(f"{where}: expected a table, got {type(d).__name__}")
        self.d, self.where = d, where

    def fail(self, key: str, problem: str) -> ConfigError:
        """The error saying what is wrong with field ``key``."""
        return ConfigError(f"{self.where}.{key}: {problem} (got {self.d.get(key)!r})")

    def str_(self, key: str, default: str | None = None, choices: Sequence[str] = ()) -> str:
        v = self.d.get(key, default)
        if not isinstance(v, str) or not v:
            raise self.fail(key, "required non-empty string")
        if choices and v not in choices:
            raise self.fail(key, f"must be one of {', '.join(choices)}")
        return v

    def num(
        self,
        key: str,
        default: float,
        lo: float,
        hi: float = math.inf,
        open_lo: bool = False,
        open_hi: bool = False,
    ) -> float:
        v = self.d.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int | float) or math.isnan(v):
            raise self.fail(key, "must be a number")
        if v < lo or (open_lo and v == lo) or v > hi or (open_hi and v == hi):
            lb, rb = "(" if open_lo else "[", ")" if open_hi else "]"
            raise self.fail(key, f"must be in {lb}{lo:g}, {hi:g}{rb}")
        return float(v)

    def int_(self, key: str, default: int, lo: int) -> int:
        v = self.d.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise self.fail(key, f"must be an integer >= {lo}")
        return v

    def bool_(self, key: str, default: bool) -> bool:
        v = self.d.get(key, default)
        if not isinstance(v, bool):
            raise self.fail(key, "must be true or false")
        return v

    def strs(self, key: str, default: Sequence[str]) -> tuple[str, ...]:
        v = self.d.get(key, default)
        if (
            isinstance(v, str)
            or not isinstance(v, Sequence)
            or not all(isinstance(s, str) and s for s in v)
        ):
            raise self.fail(key, "must be a list of strings")
        return tuple(v)

    def bounds(self, key: str) -> tuple[float, float] | None:
        v = self.d.get(key)
        if v is None:
            return None
        ok = isinstance(v, Sequence) and not isinstance(v, str) and len(v) == 2
        nums = ok and all(
            isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in v
        )
        if not nums or not v[0] < v[1]:
            raise self.fail(key, "must be [lower, upper] with finite lower < upper")
        return (float(v[0]), float(v[1]))

    def window(self, default: tuple[int | None, float | None]) -> tuple[int | None, float | None]:
        if "window" in self.d and "window_seconds" in self.d:
            raise self.fail("window", "give window or window_seconds, not both")
        if "window" in self.d:
            return (self.int_("window", 0, 1), None)
        if "window_seconds" in self.d:
            return (None, self.num("window_seconds", 0.0, 0.0, open_lo=True))
        return default


def tables(r: TableReader, key: str) -> list[Mapping[str, Any]]:
    """The list of tables under ``key`` (empty when absent)."""
    v = r.d.get(key, [])
    if not isinstance(v, list):
        raise r.fail(key, "must be a list of tables")
    return v


def metric_spec(d: Mapping[str, Any], where: str) -> MetricSpec:
    """The custom metric declared by the table ``d`` (an ``[[experiments.metrics]]`` entry)."""
    r = TableReader(d, where)
    return MetricSpec(
        r.str_("name"),
        r.bool_("higher_is_better", False) if "higher_is_better" in d else _required_bool(r),
        r.str_("kind", "paired", KINDS),
        r.bool_("binary", False),
        r.bounds("bounds"),
        r.bool_("symmetric", False),
    )


def _required_bool(r: TableReader) -> bool:
    raise r.fail("higher_is_better", "required: true or false")
