"""The delivery example: an ETA model feeds a planner; what matters is late deliveries.

Experiments-file use::

    decision = "streams.downstream.delivery:promise_slot"
    kpis = ["streams.downstream.delivery:delivery_kpis"]

    [[experiments.metrics]]
    name = "late"
    higher_is_better = false
    binary = true

    [[experiments.metrics]]
    name = "idle_minutes"
    higher_is_better = false

A model that predicts early (a negative bias) can have the lower mean absolute error and
still make the planner promise slots that the courier misses more often.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "SLOT_MINUTES",
    "Delivery",
    "EtaModel",
    "delivery_kpis",
    "generate_deliveries",
    "promise_slot",
    "train_eta_models",
    "true_minutes",
]

SLOT_MINUTES = 10
SAFETY_MINUTES = 3.0
TRAFFIC = {"low": 1.0, "medium": 1.25, "high": 1.6}


def promise_slot(inputs: Mapping[str, Any], predicted_minutes: Any) -> int:
    """The planner: promise the end of the 10-minute slot that holds ETA + a safety margin.

    Examples
    --------
    >>> promise_slot({}, 21.0)
    30
    """
    return int(math.ceil((float(predicted_minutes) + SAFETY_MINUTES) / SLOT_MINUTES) * SLOT_MINUTES)


def delivery_kpis(
    inputs: Mapping[str, Any], promised: Any, actual_minutes: Any
) -> dict[str, float]:
    """Late (1 if the delivery took longer than promised) and idle minutes before the promise.

    Examples
    --------
    >>> delivery_kpis({}, 30, 33.5)
    {'late': 1.0, 'idle_minutes': 0.0}
    """
    actual = float(actual_minutes)
    return {"late": float(actual > promised), "idle_minutes": max(float(promised) - actual, 0.0)}


def true_minutes(distance_km: float, prep_minutes: float, traffic: str) -> float:
    """The (noise-free) time a delivery takes: prep plus a traffic-dependent, curved ride."""
    return float(prep_minutes + 4.0 * distance_km**0.8 * TRAFFIC[traffic])


@dataclass(frozen=True, slots=True)
class Delivery:
    """One order: its features, its city, and how long it really took."""

    features: dict[str, Any]
    city: str
    actual_minutes: float


def generate_deliveries(n: int, seed: int = 0) -> Iterator[Delivery]:
    """``n`` orders with realistic spread (seeded)."""
    rng = random.Random(seed)
    for _ in range(n):
        distance = rng.uniform(0.5, 12.0)
        prep = rng.uniform(5.0, 20.0)
        traffic = rng.choice(tuple(TRAFFIC))
        actual = true_minutes(distance, prep, traffic) + rng.gauss(0.0, 3.0)
        features = {"distance_km": distance, "prep_minutes": prep, "traffic": traffic}
        yield Delivery(features, rng.choice(("berlin", "paris", "madrid")), max(actual, 1.0))


TRAFFIC_CODE = {"low": 0.0, "medium": 1.0, "high": 2.0}


class EtaModel:
    """An ETA regressor over delivery features, usable by the hook and by shadow workers.

    ``columns`` picks the features it uses; ``bias`` (minutes) is added to every
    prediction, to model a training set that systematically misses part of the trip.

    Examples
    --------
    >>> live, early = train_eta_models(seed=0, n=300)
    >>> round(live.predict_one({"distance_km": 3.0, "prep_minutes": 10.0, "traffic": "low"}))
    22
    """

    def __init__(self, estimator: Any, columns: tuple[str, ...], bias: float = 0.0) -> None:
        self.estimator = estimator
        self.columns = columns
        self.bias = bias

    def _row(self, features: Mapping[str, Any]) -> list[float]:
        return [
            TRAFFIC_CODE[features[c]] if c == "traffic" else float(features[c])
            for c in self.columns
        ]

    def predict_batch(self, rows: list[Mapping[str, Any]]) -> list[float]:
        """Minutes for each feature dict (what shadow workers call)."""
        predicted = self.estimator.predict([self._row(r) for r in rows])
        return [float(p) + self.bias for p in predicted]

    def predict_one(self, features: Mapping[str, Any]) -> float:
        return self.predict_batch([features])[0]


def train_eta_models(seed: int = 0, n: int = 3000, bias: float = -3.5) -> tuple[EtaModel, EtaModel]:
    """The live model (linear, ignores traffic) and an early-biased but sharper candidate."""
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.linear_model import LinearRegression

    orders = list(generate_deliveries(n, seed=seed))
    target = [o.actual_minutes for o in orders]
    live_columns = ("distance_km", "prep_minutes")
    candidate_columns = ("distance_km", "prep_minutes", "traffic")
    live = EtaModel(LinearRegression(), live_columns)
    candidate = EtaModel(GradientBoostingRegressor(random_state=seed), candidate_columns, bias)
    for model in (live, candidate):
        model.estimator.fit([model._row(o.features) for o in orders], target)
    return live, candidate
