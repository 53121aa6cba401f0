"""The verdict on a prediction-powered estimate while labels are partial ("estimated"): a
clearly worse candidate is rejected with 20% of the requests labelled, before the labelled
sequence alone can; equal models are not; the option's parsing."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from streams.stats import ConfigError, ExperimentMonitor, ExperimentRules, Observation
from streams.stats.verdict import ESTIMATED

LOOK_EVERY = 500


def bench() -> ModuleType:
    path = Path(__file__).resolve().parents[3] / "bench" / "validity.py"
    spec = importlib.util.spec_from_file_location("validity", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def config(**extra: object) -> dict[str, object]:
    return {
        "name": "exp",
        "primary_metric": "log_loss",
        "proxies": ["log_loss"],
        "ppi_look_every": LOOK_EVERY,
        **extra,
    }


def run(seed: int, cand_noise: float, events: int = 10_000) -> list[tuple[int, str, str, str]]:
    """(paired requests, decision, reason, primary's window) after every planned look: losses
    and proxies from the battery's late-label simulation, 20% of the requests labelled."""
    v = bench()
    rng = np.random.default_rng(seed)
    d, f = v.late_label_losses(rng, (1, events), cand_noise)
    lab = rng.random(events) < v.LABELLED
    mon = ExperimentMonitor(config())
    out = []
    for i, (di, fi, li) in enumerate(zip(d[0].tolist(), f[0].tolist(), lab.tolist(), strict=True)):
        paired = {"log_loss~proxy": (0.0, fi)}
        if li:
            paired["log_loss"] = (0.0, di)
        mon.update(Observation(i, {}, paired))
        if (i + 1) % LOOK_EVERY == 0:
            verdict = mon.evaluate(i).verdict
            window = "" if verdict.primary is None else verdict.primary.window
            out.append((i + 1, verdict.decision, verdict.reason, window))
    return out


def test_clearly_worse_candidate_is_rejected_estimated_with_20pc_labels() -> None:
    looks = run(11, bench().CAND_NOISE * 1.5)
    first = next(x for x in looks if x[1] != "continue")
    n, decision, reason, window = first
    assert decision == "reject" and reason.startswith(ESTIMATED) and window == "estimated"
    assert "significantly worse" in reason and n <= 5_000
    assert all(x[1] == "reject" for x in looks[looks.index(first) :])  # kept once decided


def test_equal_models_are_not_rejected_estimated() -> None:
    decided = [x for seed in range(12) for x in run(seed, bench().LIVE_NOISE, 6_000)[-1:]]
    assert sum(x[1] != "continue" for x in decided) <= 1, decided


def test_option_defaults_and_checks() -> None:
    assert ExperimentRules.from_dict(config()).estimated_verdict
    assert not ExperimentRules.from_dict(config(estimated_verdict=False)).estimated_verdict
    assert not ExperimentRules.from_dict(
        {"name": "e", "primary_metric": "log_loss"}
    ).estimated_verdict
    with pytest.raises(ConfigError, match="estimated_verdict"):
        ExperimentRules.from_dict(
            {"name": "e", "primary_metric": "log_loss", "estimated_verdict": True}
        )


def test_without_the_option_the_verdict_waits_for_labels() -> None:
    v = bench()
    rng = np.random.default_rng(11)
    d, f = v.late_label_losses(rng, (1, 3_000), v.CAND_NOISE * 1.5)
    mon = ExperimentMonitor(config(estimated_verdict=False))
    for i in range(3_000):
        paired = {"log_loss~proxy": (0.0, float(f[0, i]))}
        if i % 5 == 0:
            paired["log_loss"] = (0.0, float(d[0, i]))
        mon.update(Observation(i, {}, paired))
    assert not mon.evaluate(3_000).verdict.reason.startswith(ESTIMATED)


def test_looks_start_with_the_labelled_minimum_and_stop_at_twenty() -> None:
    mon = ExperimentMonitor(config(ppi_look_every=50))
    rng = np.random.default_rng(2)
    for i in range(5_000):
        paired = {"log_loss~proxy": (0.0, float(rng.normal()))}
        if i % 5 == 0:
            paired["log_loss"] = (0.0, paired["log_loss~proxy"][1] + float(rng.normal()))
        mon.update(Observation(i, {}, paired))
        if i == 449:  # 90 labels: no look yet, however many paired requests
            assert mon._v_looks == 0 and mon._v_est is None
        if i == 499:  # the 100th label came at 496: the first look, at 500 paired requests
            assert mon._v_looks == 1 and mon._v_est is not None and mon._v_est.n == 100
    assert mon._v_looks == 20
