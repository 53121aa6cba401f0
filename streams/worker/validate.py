"""Checks an input must pass before a model sees it; failures go to the dead-letter topic."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from streams.records import ModelInput

__all__ = ["Invalid", "check_input"]


@dataclass(frozen=True, slots=True)
class Invalid:
    """Why an input cannot be scored: ``error_type`` is a short code, ``reason`` the detail."""

    error_type: str
    reason: str


def check_input(record: ModelInput, required: Sequence[str] | None) -> Invalid | None:
    """``None`` when ``record`` can be scored, else why not.

    Numeric features must be finite; every ``required`` feature must be present
    (numeric or categorical).

    Examples
    --------
    >>> check_input(ModelInput("r1", "churn", 0, {"age": 41.0}), ["age"]) is None
    True
    >>> check_input(ModelInput("r1", "churn", 0, {"age": float("nan")}), None)
    Invalid(error_type='nan_features', reason='non-finite numeric features: age=nan')
    >>> check_input(ModelInput("r1", "churn", 0, {"age": 41.0}), ["age", "tenure"])
    Invalid(error_type='missing_features', reason='missing features: tenure')
    """
    numeric = record.numeric
    total = sum(numeric.values())
    if total - total != 0:  # NaN or an infinity somewhere (or overflow): look closer
        bad = [f"{k}={v!r}" for k, v in numeric.items() if not math.isfinite(v)]
        if bad:
            return Invalid("nan_features", f"non-finite numeric features: {', '.join(bad)}")
    if required:
        categorical = record.categorical
        missing = [n for n in required if n not in numeric and n not in categorical]
        if missing:
            return Invalid("missing_features", f"missing features: {', '.join(missing)}")
    return None
