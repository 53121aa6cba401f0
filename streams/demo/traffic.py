"""The demo's request streams: diagnosis requests (held-out rows drawn with replacement, a
little noise, a country) and delivery orders (:mod:`streams.downstream.delivery`, a city)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from streams.demo.models import DemoData
from streams.downstream.delivery import Delivery, generate_deliveries

__all__ = ["COUNTRIES", "DELIVERY_SEED", "DemoRequest", "deliveries", "requests"]

COUNTRIES = {"DE": 0.4, "FR": 0.35, "US": 0.25}
"""Segment values and their shares of the traffic."""


@dataclass(frozen=True, slots=True)
class DemoRequest:
    """One request: its features, the true class (known later) and its segment tags."""

    features: dict[str, float]
    label: int
    segments: dict[str, str]


def requests(
    data: DemoData, n: int | None, *, noise: float = 0.05, seed: int = 0
) -> Iterator[DemoRequest]:
    """``n`` requests (endless when ``None``) from the held-out rows.

    Each feature gets Gaussian noise of ``noise`` times its training standard deviation,
    so repeated rows are not identical requests.

    Examples
    --------
    >>> from streams.demo.models import load_data
    >>> stream = list(requests(load_data(), 3, seed=1))
    >>> len(stream), sorted(stream[0].segments), stream[0].label in (0, 1)
    (3, ['country'], True)
    """
    rng = np.random.default_rng(seed)
    scale = data.x_train.std(axis=0) * noise
    countries, shares = list(COUNTRIES), np.array(list(COUNTRIES.values()))
    served = 0
    while n is None or served < n:
        index = int(rng.integers(len(data.x_test)))
        row = data.x_test[index] + rng.normal(0.0, 1.0, scale.shape) * scale
        country = countries[int(rng.choice(len(countries), p=shares / shares.sum()))]
        yield DemoRequest(
            dict(zip(data.features, map(float, row), strict=True)),
            int(data.y_test[index]),
            {"country": country},
        )
        served += 1


DELIVERY_SEED = 5
"""Added to the demo's seed for the delivery orders. The early candidate's extra late
deliveries (about +5 points) are significant after some 700 orders of this stream, so
short demo runs show the rejection too; longer runs do for any seed."""


def deliveries(n: int, *, seed: int = 0) -> Iterator[Delivery]:
    """``n`` delivery orders (features, city, actual minutes) of the demo's stream.

    Examples
    --------
    >>> order = next(deliveries(1))
    >>> sorted(order.features), order.city in ("berlin", "paris", "madrid")
    (['distance_km', 'prep_minutes', 'traffic'], True)
    """
    return generate_deliveries(n, seed=DELIVERY_SEED + seed)
