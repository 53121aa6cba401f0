"""A/A noise floor: tolerances from a replica comparison, applied as min_effect."""

from __future__ import annotations

import random

from streams.stats import ExperimentMonitor, ExperimentRules, Observation, noise_floor


def aa(n: int, seed: int) -> list[Observation]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        truth = rng.random()
        live = truth + rng.gauss(0, 0.1)  # stochastic model: two draws of the same model
        cand = truth + rng.gauss(0, 0.1)
        out.append(
            Observation(
                i,
                {},
                {"abs_error": (abs(live - truth), abs(cand - truth))},
                {"predicted_class": (str(live > 0.5), str(cand > 0.5))},
            )
        )
    return out


def test_noise_floor_from_observations_and_monitor() -> None:
    obs = aa(3000, 1)
    floor = noise_floor(obs)
    tol = floor.min_effect("abs_error")
    assert 0.0 < tol < 0.01  # mean |error| ~0.08; A/A mean difference is ~0
    dis = floor.min_effect("predicted_class", "agreement")
    assert 0.05 < dis < 0.15  # the model disagrees with itself near the boundary
    mon = ExperimentMonitor({"name": "aa"})
    for o in obs:
        mon.update(o)
    assert noise_floor(mon, now_ms=3000).min_effect("abs_error") == tol
    assert floor.min_effect("unknown") == 0.0


def test_apply_raises_min_effect() -> None:
    floor = noise_floor(aa(2000, 2))
    cfg = ExperimentRules.from_dict(
        {
            "name": "e",
            "rules": [
                {"name": "mae", "metric": "abs_error"},
                {
                    "name": "agree",
                    "metric": "predicted_class",
                    "test": "agreement",
                    "min_effect": 0.9,
                },
            ],
        }
    )
    out = floor.apply(cfg, multiplier=2.0)
    assert out.rules[0].min_effect == 2.0 * floor.min_effect("abs_error")
    assert out.rules[1].min_effect == 0.9  # already above the floor
