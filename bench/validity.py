"""Monte-Carlo validity of the default alert rules (anytime-valid mixture SPRT).

Prints ONE JSON object.  Every number comes from simulations run in this call:

* ``aa_false_alarm``: share of A/A runs (candidate identical in distribution to live) in which the
  default rules of an experiment whose primary metric is ``correct`` (accuracy 90%) ever alert;
  the rules are checked after every event.  Default rules: ``correct`` (worse = lower),
  ``latency_ms`` and ``error`` (worse = higher), the experiment alpha 0.05 split over the three.
* ``naive_false_alarm``: the same runs judged by one-sided paired t-tests at the same split alpha,
  re-checked every 100 events (what a fixed-horizon test does under continuous monitoring).
* ``detect_ratio``: median events the default rules need to flag a candidate 2 points less
  accurate (90% -> 88%), over the fixed-horizon McNemar sample size (two-sided alpha 0.05,
  80% power, Connor 1987) that knows the effect.  ``detect_ratio_mae``: same for a 10% larger
  mean absolute error, against the paired-t sample size for the known mean and sd of the
  difference.
* ``guardrail_*``: the verdict's bounded confidence sequence (``BoundedCS``) for an ``error``
  guardrail with margin 0.01 at the verdict alpha (0.05 split over primary + 1 guardrail):
  ``guardrail_false_ok_at_margin`` is the share of runs where a candidate erring exactly 0.01
  more (1% -> 2%) is ever judged within the margin (must be <= alpha);
  ``guardrail_cs_miss_aa`` the share of A/A runs (1% vs 1% errors) whose sequence ever excludes
  0; ``guardrail_zero_variance_ok_n`` the events after which two never-erring models pass
  (the old normal-mixture sequence never did: it is infinite at zero variance).

Usage: ``python bench/validity.py --json [--quick] [--runs R] [--events T] [--seed S]``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import special, stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streams.stats.bounded import eb_sequence
from streams.stats.rules import DEFAULT_MIN_SAMPLES, DEFAULT_TUNE_N
from streams.stats.sequential import log_evalue, mixture_rho

Arr = npt.NDArray[np.float64]
ALPHA = 0.05
N_RULES = 3
CHUNK = 100
GUARD_MARGIN = 0.01


def first_alert_sequential(d: Arr, worse_is_positive: bool, alpha: float) -> Arr:
    """First event (1-based) at which the default mixture-SPRT rule alerts; inf if never.

    ``d`` is a (runs, events) array of ``cand - live``; the boundary is computed for every n at
    once from cumulative sums, with the same functions the library uses.
    """
    runs, events = d.shape
    burn = max(1, DEFAULT_MIN_SAMPLES)
    s = np.cumsum(d if worse_is_positive else -d, axis=1)
    v = np.cumsum(d * d, axis=1)
    n = np.arange(1, events + 1, dtype=np.float64)
    # burn-in scale: V/n at the first n >= burn with V > 0 (as MixtureSPRT.update)
    pos = v[:, burn - 1 :] > 0
    idx = np.where(pos.any(axis=1), pos.argmax(axis=1) + burn - 1, events - 1)
    scale = v[np.arange(runs), idx] / (idx + 1.0)
    active = (n[None, :] >= np.maximum(idx + 1, DEFAULT_MIN_SAMPLES)[:, None]) & (
        scale[:, None] > 0
    )
    rho = mixture_rho(np.where(scale > 0, scale, 1.0), alpha, DEFAULT_TUNE_N)[:, None]
    le = log_evalue(s, v, rho, two_sided=False)
    hit = active & (le >= math.log(1.0 / alpha))
    return np.where(hit.any(axis=1), hit.argmax(axis=1) + 1.0, np.inf)


def first_alert_naive(d: Arr, worse_is_positive: bool, alpha: float, every: int = 100) -> Arr:
    """First checkpoint (every ``every`` events) where a one-sided paired t-test rejects."""
    _runs, events = d.shape
    x = d if worse_is_positive else -d
    s = np.cumsum(x, axis=1)[:, every - 1 :: every]
    q = np.cumsum(x * x, axis=1)[:, every - 1 :: every]
    n = np.arange(every, events + 1, every, dtype=np.float64)[None, :]
    var = np.maximum(q - s * s / n, 0.0) / (n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (s / n) / np.sqrt(var / n)
        p = special.stdtr(n - 1, -t)
    hit = (var > 0) & (p <= alpha)
    return np.where(hit.any(axis=1), (hit.argmax(axis=1) + 1.0) * every, np.inf)


def sim_correct(
    rng: np.random.Generator, shape: tuple[int, int], p_live: float, p_cand: float
) -> Arr:
    live = rng.random(shape) < p_live
    cand = rng.random(shape) < p_cand
    return cand.astype(np.float64) - live.astype(np.float64)


def sim_latency(rng: np.random.Generator, shape: tuple[int, int]) -> Arr:
    common = rng.lognormal(math.log(20.0), 0.5, shape)
    return common * (rng.lognormal(0.0, 0.3, shape) - rng.lognormal(0.0, 0.3, shape))


def sim_abs_error(rng: np.random.Generator, shape: tuple[int, int], k: float) -> Arr:
    z0 = rng.standard_normal(shape)
    live = np.abs(0.9 * z0 + math.sqrt(0.19) * rng.standard_normal(shape))
    cand = k * np.abs(0.9 * z0 + math.sqrt(0.19) * rng.standard_normal(shape))
    return cand - live


def mcnemar_n(p_live: float, p_cand: float, alpha: float, power: float) -> float:
    """Connor (1987) paired-proportion sample size, independent outcomes."""
    p10, p01 = p_live * (1 - p_cand), (1 - p_live) * p_cand
    psi, delta = p10 + p01, p01 - p10
    za, zb = stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(power)
    return float((za * math.sqrt(psi) + zb * math.sqrt(psi - delta**2)) ** 2 / delta**2)


def paired_n(mean: float, sd: float, alpha: float, power: float) -> float:
    za, zb = stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(power)
    return float(((za + zb) * sd / mean) ** 2)


def guardrail_checks(rng: np.random.Generator, runs: int, events: int) -> dict[str, Any]:
    """Validity and zero-variance behaviour of the verdict's ``error`` guardrail sequence."""
    alpha, margin = ALPHA / 2, GUARD_MARGIN
    false_ok, miss = [], []
    for start in range(0, runs, CHUNK):
        shape = (min(CHUNK, runs - start), events)
        lo, hi = eb_sequence((sim_correct(rng, shape, 0.01, 0.02) + 1.0) / 2.0, alpha)
        ok = (2.0 * hi - 1.0 <= margin)[:, DEFAULT_MIN_SAMPLES - 1 :]
        false_ok.append(ok.any(axis=1))
        lo, hi = eb_sequence((sim_correct(rng, shape, 0.01, 0.01) + 1.0) / 2.0, alpha)
        miss.append(((lo > 0.5) | (hi < 0.5)).any(axis=1))
    _lo, hi = eb_sequence(np.full((1, events), 0.5), alpha)
    passed = np.flatnonzero(2.0 * hi[0] - 1.0 <= margin)
    n_ok = max(float(passed[0] + 1), DEFAULT_MIN_SAMPLES) if passed.size else math.inf
    return {
        "guardrail_false_ok_at_margin": float(np.mean(np.concatenate(false_ok))),
        "guardrail_cs_miss_aa": float(np.mean(np.concatenate(miss))),
        "guardrail_zero_variance_ok_n": n_ok,
        "guardrail_alpha": alpha,
    }


def run(runs: int, events: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    a_rule = ALPHA / N_RULES
    seq_any, naive_any = [], []
    per: dict[str, list[Arr]] = {k: [] for k in ("correct", "latency_ms", "error", "abs_error")}
    single: dict[str, list[Arr]] = {k: [] for k in per}
    for start in range(0, runs, CHUNK):
        shape = (min(CHUNK, runs - start), events)
        data = {
            "correct": (sim_correct(rng, shape, 0.9, 0.9), False),
            "latency_ms": (sim_latency(rng, shape), True),
            "error": (sim_correct(rng, shape, 0.01, 0.01), True),
            "abs_error": (sim_abs_error(rng, shape, 1.0), True),
        }
        seq_t, naive_t = [], []
        for name, (d, worse_pos) in data.items():
            t = first_alert_sequential(d, worse_pos, a_rule)
            per[name].append(t)
            single[name].append(first_alert_sequential(d, worse_pos, ALPHA))
            if name != "abs_error":
                seq_t.append(t)
                naive_t.append(first_alert_naive(d, worse_pos, a_rule))
        seq_any.append(np.minimum.reduce(seq_t))
        naive_any.append(np.minimum.reduce(naive_t))

    def rate(ts: list[Arr]) -> float:
        return float(np.mean(np.isfinite(np.concatenate(ts))))

    # detection: accuracy 90% -> 88%, MAE +10%
    det_acc, det_mae = [], []
    for start in range(0, runs, CHUNK):
        shape = (min(CHUNK, runs - start), events)
        det_acc.append(first_alert_sequential(sim_correct(rng, shape, 0.9, 0.88), False, a_rule))
        det_mae.append(first_alert_sequential(sim_abs_error(rng, shape, 1.1), True, a_rule))
    big = sim_abs_error(rng, (20, 100_000), 1.1).ravel()
    n_fix_acc = mcnemar_n(0.9, 0.88, ALPHA, 0.8)
    n_fix_mae = paired_n(float(big.mean()), float(big.std(ddof=1)), ALPHA, 0.8)
    acc, mae = np.concatenate(det_acc), np.concatenate(det_mae)
    guard = guardrail_checks(rng, runs, events)
    se = math.sqrt(0.05 * 0.95 / runs)
    return {
        "aa_false_alarm": rate(seq_any),
        "aa_false_alarm_target": 0.05,
        "aa_monte_carlo_se_at_target": round(se, 4),
        "naive_false_alarm": float(np.mean(np.isfinite(np.concatenate(naive_any)))),
        "aa_false_alarm_per_rule": {k: rate(v) for k, v in per.items()},
        "aa_false_alarm_single_rule_alpha_0.05": {k: rate(v) for k, v in single.items()},
        "detect_ratio": float(np.median(acc) / n_fix_acc),
        "detect_median_events": float(np.median(acc)),
        "detect_fixed_horizon_n": round(n_fix_acc, 1),
        "detect_share_flagged": float(np.mean(np.isfinite(acc))),
        "detect_ratio_mae": float(np.median(mae) / n_fix_mae),
        "detect_median_events_mae": float(np.median(mae)),
        "detect_fixed_horizon_n_mae": round(n_fix_mae, 1),
        "detect_share_flagged_mae": float(np.mean(np.isfinite(mae))),
        **guard,
        "rule_alpha": a_rule,
        "min_samples": DEFAULT_MIN_SAMPLES,
        "tune_n": DEFAULT_TUNE_N,
        "runs": runs,
        "events": events,
        "seed": seed,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object (default)")
    ap.add_argument("--quick", action="store_true", help="100 runs x 5,000 events")
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=20240501)
    args = ap.parse_args(argv)
    runs, events = (100, 5_000) if args.quick else (args.runs, args.events)
    t0 = time.perf_counter()
    out = run(runs, events, args.seed)
    out["seconds"] = round(time.perf_counter() - t0, 2)
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
