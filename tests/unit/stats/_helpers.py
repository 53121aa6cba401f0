"""Shared helpers for the statistics unit tests."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

from streams.stats.results import TestResult


def close(a: float, b: float, rel: float = 1e-9, abs_: float = 1e-12) -> bool:
    """Equality with tolerance; nan == nan, inf == inf."""
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


def assert_same(r1: TestResult, r2: TestResult, rel: float = 1e-9, abs_: float = 1e-12) -> None:
    """Two results agree on statistic, p-value, effect, interval and n."""
    assert r1.n == r2.n, (r1, r2)
    for f in ("statistic", "pvalue", "effect"):
        assert close(getattr(r1, f), getattr(r2, f), rel, abs_), (f, r1, r2)
    for a, b in zip(r1.ci, r2.ci, strict=True):
        assert close(a, b, rel, abs_), ("ci", r1, r2)


def quiet(fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    """Call a scipy oracle with its warnings (small samples, degenerate data) silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kw)
