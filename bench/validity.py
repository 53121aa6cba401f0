"""Monte-Carlo validity of the default sequential tests: an A/A battery and detection speed.

Prints ONE JSON object.  Every number comes from simulations run in this call; every run is
checked after every event (the rules are anytime-valid, so looking is free).

* ``battery``: for each null of the A/A battery, the share of runs in which a one-sided rule at
  ``alpha = 0.05`` ever alerts, with its Monte-Carlo standard error.  A null is the test's own
  hypothesis: for the mean tests, equal means with finite variance.  Symmetric nulls
  (Bernoulli accuracy, normal and lognormal differences, Pareto 1.5 latency) are judged by the
  symmetric mixture SPRT (``msprt``, valid for symmetric differences whatever their tails) and,
  when they have a variance, by the asymptotic confidence sequence (``asymptotic_cs``);
  equal-mean asymmetric nulls (Pareto 2.5 vs lognormal latency, 1% +99 / 99% -1, two
  different lognormals, log-losses of two real models on the same data) by ``asymptotic_cs``,
  in both orientations (candidate = either side).  ``aa_false_alarm_max`` is the largest rate
  over the rows within their test's hypothesis; rows outside it (``asymptotic_cs`` on Pareto
  1.5, which has no variance: no mean test can promise anything there) are reported apart.
* ``aa_false_alarm_default_rules``: A/A of an experiment's three default rules (``correct``
  by msprt, ``latency_ms`` by asymptotic_cs, ``error`` by msprt, alpha 0.05 split in three).
* ``naive_false_alarm``: the same runs judged by one-sided paired t-tests at the same split alpha,
  re-checked every 100 events (what a fixed-horizon test does under continuous monitoring).
* ``detect_ratio``: median events the default rule needs to flag a candidate 2 points less
  accurate (90% -> 88%), over the fixed-horizon McNemar sample size (two-sided alpha 0.05,
  80% power, Connor 1987) that knows the effect.  ``detect_ratio_mae``: same for a 5% larger
  mean absolute error (asymptotic_cs), against the paired-t sample size for the known mean and sd
  of the difference.
* ``guardrail_*``: the verdict's bounded confidence sequence (``BoundedCS``) for an ``error``
  guardrail with margin 0.01 at the verdict alpha (0.05 split over primary + 1 guardrail):
  ``guardrail_false_ok_at_margin`` is the share of runs where a candidate erring exactly 0.01
  more (1% -> 2%) is ever judged within the margin (must be <= alpha);
  ``guardrail_cs_miss_aa`` the share of A/A runs (1% vs 1% errors) whose sequence ever excludes
  0; ``guardrail_zero_variance_ok_n`` the events after which two never-erring models pass.

The sequential statistics are computed for all runs at once from cumulative sums, with the
library's own functions (``log_evalue``, ``mixture_rho``); a unit test holds the vectorised
paths equal to the streaming classes event by event.

Usage: ``python bench/validity.py --json [--quick] [--runs R] [--events T] [--seed S]``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import special, stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streams.stats.asymptotic import SKEW_FACTOR
from streams.stats.bounded import eb_sequence
from streams.stats.quantile_cs import order_bounds
from streams.stats.rules import DEFAULT_MIN_SAMPLES, DEFAULT_TUNE_N
from streams.stats.sequential import log_evalue, mixture_rho

Arr = npt.NDArray[np.float64]
ALPHA = 0.05
N_RULES = 3
CHUNK = 100
GUARD_MARGIN = 0.01
MAE_K = 1.05  # candidate MAE +5%
LABELLED = 0.2  # share of requests labelled by the time of a check (late labels)
LIVE_NOISE, CAND_NOISE = 0.5, 0.8  # logit noise of live and of the worse candidate
PROXY_AGREEMENT = 0.9  # early label = final label
PPI_LOOKS = 20  # planned looks of the prediction-powered rule (Bonferroni)


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


def first_alert_asymptotic(
    d: Arr,
    worse_is_positive: bool,
    alpha: float,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    tune_n: float = DEFAULT_TUNE_N,
    skew_factor: float = SKEW_FACTOR,
) -> Arr:
    """First event (1-based) at which a one-sided ``AsymptoticCS`` rule alerts; inf if never.

    As :class:`~streams.stats.asymptotic.AsymptoticCS` (held equal by a unit test): central
    moment sums from cumulative power sums, the start gate (burn-in, variance, Cochran's rule),
    the scale when it first opens, and the library's ``log_evalue``.
    """
    e = log_e_asymptotic(d if worse_is_positive else -d, alpha, min_samples, tune_n, skew_factor)
    hit = e >= math.log(1.0 / alpha)
    return np.where(hit.any(axis=1), hit.argmax(axis=1) + 1.0, np.inf)


def log_e_asymptotic(
    d: Arr,
    alpha: float,
    min_samples: int,
    tune_n: float,
    skew_factor: float,
    skew_correction: bool = True,
    student_correction: bool = True,
) -> Arr:
    """Log e-value of the one-sided (``greater``) asymptotic CS after every event."""
    runs, events = d.shape
    n = np.arange(1, events + 1, dtype=np.float64)
    s1 = np.cumsum(d, axis=1)
    s2 = np.cumsum(d * d, axis=1)
    s3 = np.cumsum(d * d * d, axis=1)
    s4 = np.cumsum(d**4, axis=1)
    mean = s1 / n
    m2 = np.maximum(s2 - s1 * mean, 0.0)
    m3 = s3 - 3.0 * mean * s2 + 2.0 * n * mean**3
    m4 = s4 - 4.0 * mean * s3 + 6.0 * mean**2 * s2 - 3.0 * n * mean**4
    with np.errstate(divide="ignore", invalid="ignore"):
        ready = (n >= max(2, min_samples)) & (m2 > 0) & (skew_factor * (m3 / m2) ** 2 <= m2)
    opened = ready.any(axis=1)
    first = np.where(opened, ready.argmax(axis=1), events - 1)
    scale = m2[np.arange(runs), first] / (first + 1.0)
    rho = mixture_rho(np.where(opened & (scale > 0), scale, 1.0), alpha, tune_n)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.sqrt(n) * m3 / m2**1.5 / (6.0 * np.sqrt(n))  # Hall's c = g1 / (6 sqrt(n))
        root = np.sqrt(m2)
        t = s1 / root
        small = ~(np.abs(c) >= 1e-12)
        safe = np.where(small, 1.0, c)
        hall_t = np.where(small, t + c, ((1.0 + 2.0 * safe * t) ** 3 - 1.0) / (6.0 * safe) + c)
        t = np.where(skew_correction & np.isfinite(hall_t), hall_t, t)
        if student_correction:  # Student's t at 2 n / (kurtosis - 1) dof, read as normal
            excess = n * m4 / (m2 * m2) - 1.0
            nu = np.where(excess > 1e-12, 2.0 * n / excess, np.inf)
            z = -special.ndtri(special.stdtr(np.where(nu < 1e12, nu, 1.0), -np.abs(t)))
            ok = (nu < 1e12) & np.isfinite(z)
            t = np.where(ok, np.copysign(z, t), t)
        s = t * root
        le = log_evalue(s, m2, rho, two_sided=False)
    out: Arr = np.where(ready, le, 0.0)
    return out


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


def pareto(rng: np.random.Generator, shape_: float, mean: float, size: tuple[int, int]) -> Arr:
    """Pareto (Lomax + scale) values of tail index ``shape_`` and the given mean."""
    xm = mean * (shape_ - 1.0) / shape_
    out: Arr = xm * (1.0 + rng.pareto(shape_, size))
    return out


def lognormal(rng: np.random.Generator, mean: float, sigma: float, size: tuple[int, int]) -> Arr:
    """Lognormal values with the given mean and log-scale ``sigma``."""
    out: Arr = rng.lognormal(math.log(mean) - sigma**2 / 2.0, sigma, size)
    return out


def model_loss_pool(seed: int, size: int = 200_000) -> Arr:
    """Per-request log-loss differences of two real (fitted) models on the same data, centred.

    Data: 6 features, a label from a logistic model with an interaction.  Model A is a logistic
    regression on the raw features fitted on 20,000 requests, model B one on the raw features
    and their squares fitted on 300 (overfitted, so confidently wrong now and then: both are
    fitted by Newton's method).  The differences on ``size`` fresh requests are skewed and
    heavy-tailed;
    centring them makes a finite population with exactly equal mean losses, from which the
    A/A runs draw with replacement.
    """
    rng = np.random.default_rng(seed)

    def data(n: int) -> tuple[Arr, Arr]:
        x = rng.standard_normal((n, 6))
        z = x @ np.array([1.2, -0.8, 0.5, 0.7, 0.0, -0.4]) + 0.9 * x[:, 0] * x[:, 1] - 0.3
        return x, (rng.random(n) < 1.0 / (1.0 + np.exp(-z))).astype(np.float64)

    def design(x: Arr, b: bool) -> Arr:
        cols = [x, x**2] if b else [x]
        return np.hstack([np.ones((len(x), 1)), *cols])

    def fit(a: Arr, y: Arr) -> Arr:
        w = np.zeros(a.shape[1])
        for _ in range(25):
            p = 1.0 / (1.0 + np.exp(-a @ w))
            h = a.T @ (a * (p * (1 - p))[:, None]) + 1e-3 * np.eye(a.shape[1])
            w -= np.linalg.solve(h, a.T @ (p - y))
        return w

    def loss(a: Arr, w: Arr, y: Arr) -> Arr:
        z = a @ w
        out: Arr = np.logaddexp(0.0, z) - y * z
        return out

    xt, yt = data(20_000)
    wa, wb = fit(design(xt, False), yt), fit(design(xt[:300], True), yt[:300])
    x, y = data(size)
    d = loss(design(x, True), wb, y) - loss(design(x, False), wa, y)
    centred: Arr = d - d.mean()
    return centred


Sim = Callable[[np.random.Generator, tuple[int, int]], Arr]


def nulls(seed: int) -> dict[str, tuple[bool, bool, Sim]]:
    """The A/A battery: name -> (symmetric, finite variance, simulator of ``cand - live``)."""
    pool = model_loss_pool(seed + 1)

    def from_pool(rng: np.random.Generator, size: tuple[int, int]) -> Arr:
        return pool[rng.integers(0, pool.size, size)]

    def pm99(rng: np.random.Generator, size: tuple[int, int]) -> Arr:
        return np.where(rng.random(size) < 0.01, 99.0, -1.0)

    return {
        "bernoulli_accuracy": (True, True, lambda r, z: sim_correct(r, z, 0.9, 0.9)),
        "normal_differences": (True, True, lambda r, z: r.standard_normal(z)),
        "lognormal_differences": (
            True,
            True,
            lambda r, z: r.lognormal(0.0, 1.0, z) - r.lognormal(0.0, 1.0, z),
        ),
        "pareto1.5_latency": (
            True,
            False,
            lambda r, z: pareto(r, 1.5, 20.0, z) - pareto(r, 1.5, 20.0, z),
        ),
        "pareto2.5_vs_lognormal_latency": (
            False,
            True,
            lambda r, z: pareto(r, 2.5, 20.0, z) - lognormal(r, 20.0, 0.5, z),
        ),
        "plus99_minus1": (False, True, pm99),
        "two_lognormals": (
            False,
            True,
            lambda r, z: lognormal(r, 1.0, 0.25, z) - lognormal(r, 1.0, 1.0, z),
        ),
        "two_real_models_log_loss": (False, True, from_pool),
    }


def quantile_battery(rng: np.random.Generator, runs: int, events: int) -> dict[str, Any]:
    """A/A of ``quantile_cs`` rules on nulls with equal quantiles (its own hypothesis).

    The true quantiles are known, so the rate reported is that of either side's sequence
    (``alpha / 2`` each) ever missing its quantile after some event: an upper bound of the
    rule's false alarms (an alarm needs the two intervals apart, so one of them misses).
    """
    q_live = 20.0 * math.exp(0.5 * float(stats.norm.ppf(0.99)))  # lognormal(log 20, 0.5) p99
    med_live = 20.0
    cases = {  # name -> (quantile, its true value, live sampler, candidate sampler)
        "pareto1.5_latency_p99": (
            0.99,
            (0.01 ** (-1 / 1.5)),
            lambda r, z: 1.0 + r.pareto(1.5, z),
            lambda r, z: 1.0 + r.pareto(1.5, z),
        ),
        "lognormal_vs_pareto2.5_equal_p99": (
            0.99,
            q_live,
            lambda r, z: r.lognormal(math.log(20.0), 0.5, z),
            lambda r, z: q_live * 0.01 ** (1 / 2.5) * (1.0 + r.pareto(2.5, z)),
        ),
        "lognormal_vs_pareto2.5_equal_p50": (
            0.5,
            med_live,
            lambda r, z: r.lognormal(math.log(20.0), 0.5, z),
            lambda r, z: med_live * 0.5 ** (1 / 2.5) * (1.0 + r.pareto(2.5, z)),
        ),
    }
    t = np.arange(1, events + 1)
    rows: dict[str, Any] = {}
    for name, (p, q, live_sim, cand_sim) in cases.items():
        k_lo, k_hi = order_bounds(t, p, ALPHA / 2.0, DEFAULT_TUNE_N)
        start = t >= DEFAULT_MIN_SAMPLES
        miss = []
        for first in range(0, runs, CHUNK):
            shape = (min(CHUNK, runs - first), events)
            bad = np.zeros(shape[0], dtype=bool)
            for sim in (live_sim, cand_sim):
                k = np.cumsum(sim(rng, shape) <= q, axis=1)
                bad |= (((k < k_lo) | (k > k_hi)) & start).any(axis=1)
            miss.append(bad)
        rate = float(np.mean(np.concatenate(miss)))
        rows[f"{name}/quantile_cs"] = {
            "false_alarm": rate,
            "monte_carlo_se": round(math.sqrt(max(rate * (1 - rate), 1e-12) / runs), 4),
            "in_hypothesis": True,
            "bound": "either interval misses its quantile",
        }
    return rows


def late_label_losses(
    rng: np.random.Generator, shape: tuple[int, int], s_cand: float
) -> tuple[Arr, Arr]:
    """Log-loss differences ``d`` of two binary classifiers and their label-free proxies ``f``.

    True probabilities ``pi = sigmoid(N(0, 1.5))``; live predicts ``sigmoid(logit pi + N(0,
    LIVE_NOISE))``, the candidate with noise ``s_cand``.  The proxy is the log-loss difference
    at an early, provisional label that agrees with the final one for PROXY_AGREEMENT of the
    requests (a preliminary outcome, or a stronger offline model's call), known when the
    prediction is paired; the final label comes later, for a fraction of the requests.
    """
    logit = rng.normal(0.0, 1.5, shape)
    y = rng.random(shape) < 1.0 / (1.0 + np.exp(-logit))
    early = np.where(rng.random(shape) < PROXY_AGREEMENT, y, ~y)
    zl = logit + rng.normal(0.0, LIVE_NOISE, shape)
    zc = logit + rng.normal(0.0, s_cand, shape)

    def losses(z: Arr) -> tuple[Arr, Arr]:  # log-loss if y = 1, if y = 0
        return np.logaddexp(0.0, -z), np.logaddexp(0.0, z)

    (l1, l0), (c1, c0) = losses(zl), losses(zc)
    d = np.where(y, c1 - l1, c0 - l0)
    f = np.where(early, c1 - l1, c0 - l0)
    return d, f


def first_alert_ppi(d: Arr, f: Arr, labelled: Arr, alpha: float, every: int) -> Arr:
    """First planned look (every ``every`` requests) at which a one-sided ``PredictionPowered``
    rule (candidate worse) rejects at ``alpha / looks``; inf if never.  As the streaming class
    (held equal by a unit test)."""
    _runs, events = d.shape
    looks = events // every
    at = np.arange(every, looks * every + 1, every) - 1
    w = labelled.astype(np.float64)
    c = {
        k: np.cumsum(v, axis=1)[:, at]
        for k, v in {
            "n": w,
            "d": w * d,
            "f": w * f,
            "dd": w * d * d,
            "ff": w * f * f,
            "df": w * d * f,
            "fa": f,
            "ffa": f * f,
        }.items()
    }
    n, big_n = c["n"], (at + 1.0)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        md, mf, mfa = c["d"] / n, c["f"] / n, c["fa"] / big_n
        sff = c["ff"] - n * mf * mf
        sdf = c["df"] - n * md * mf
        sdd = c["dd"] - n * md * md
        lam = np.where(sff > 0, sdf / sff, 0.0)
        theta = md - lam * (mf - mfa)
        resid = np.maximum((sdd - 2 * lam * sdf + lam * lam * sff) / (n - 1), 0.0) / n
        var = resid + lam * lam * ((c["ffa"] - big_n * mfa * mfa) / (big_n - 1)) / big_n
        z = theta / np.sqrt(var)
    hit = (n >= DEFAULT_MIN_SAMPLES) & (var > 0) & (z >= stats.norm.isf(alpha / looks))
    return np.where(hit.any(axis=1), (hit.argmax(axis=1) + 1.0) * every, np.inf)


def late_labels(rng: np.random.Generator, runs: int, events: int) -> dict[str, Any]:
    """A/A rate and detection speed of prediction-powered verdicts with 20% of labels."""
    every = max(1, events // PPI_LOOKS)
    a_rule = ALPHA / N_RULES
    aa, det, rho = [], [], []
    for start in range(0, runs, CHUNK):
        shape = (min(CHUNK, runs - start), events)
        lab = rng.random(shape) < LABELLED
        d, f = late_label_losses(rng, shape, LIVE_NOISE)
        aa.append(np.isfinite(first_alert_ppi(d, f, lab, ALPHA, every)))
        d, f = late_label_losses(rng, shape, CAND_NOISE)
        det.append(first_alert_ppi(d, f, lab, a_rule, every))
        rho.append(float(np.corrcoef(d.ravel(), f.ravel())[0, 1]))
    d, _f = late_label_losses(rng, (20, 100_000), CAND_NOISE)
    n_lab = paired_n(float(d.mean()), float(d.std(ddof=1)), ALPHA, 0.8)
    t_fix = n_lab / LABELLED  # requests until the labels-only test has its labels
    rate = float(np.mean(np.concatenate(aa)))
    t = np.concatenate(det)
    return {
        "late_labels_log_loss/ppi": {
            "false_alarm": rate,
            "monte_carlo_se": round(math.sqrt(max(rate * (1 - rate), 1e-12) / runs), 4),
            "in_hypothesis": True,
            "looks": PPI_LOOKS,
        },
        "detect_ratio_late_labels": float(np.median(t) / t_fix),
        "detect_late_labels_share_labelled": LABELLED,
        "detect_late_labels_median_events": float(np.median(t)),
        "detect_late_labels_fixed_horizon_events": round(t_fix, 1),
        "detect_late_labels_share_flagged": float(np.mean(np.isfinite(t))),
        "detect_late_labels_proxy_correlation": round(float(np.mean(rho)), 3),
    }


def battery(rng: np.random.Generator, runs: int, events: int, seed: int) -> dict[str, Any]:
    """A/A false-alarm rate of every (null, test, orientation) row, one-sided, alpha 0.05."""
    rows: dict[str, dict[str, Any]] = {}
    for name, (symmetric, finite_var, sim) in nulls(seed).items():
        hits: dict[str, list[Arr]] = {}
        for start in range(0, runs, CHUNK):
            d = sim(rng, (min(CHUNK, runs - start), events))
            tests: list[tuple[str, Arr]] = []
            if symmetric:
                tests.append(("msprt", first_alert_sequential(d, True, ALPHA)))
            tests.append(("asymptotic_cs", first_alert_asymptotic(d, True, ALPHA)))
            if not symmetric:  # the other orientation is another null with the same mean
                tests.append(("asymptotic_cs_reversed", first_alert_asymptotic(d, False, ALPHA)))
            for key, t in tests:
                hits.setdefault(key, []).append(np.isfinite(t))
        for key, h in hits.items():
            rate = float(np.mean(np.concatenate(h)))
            in_hypothesis = key == "msprt" or finite_var
            rows[f"{name}/{key}"] = {
                "false_alarm": rate,
                "monte_carlo_se": round(math.sqrt(max(rate * (1 - rate), 1e-12) / runs), 4),
                "in_hypothesis": in_hypothesis,
            }
    rows.update(quantile_battery(rng, runs, events))
    inside = {k: v for k, v in rows.items() if v["in_hypothesis"]}
    worst = max(inside, key=lambda k: inside[k]["false_alarm"])
    return {
        "aa_battery": rows,
        "aa_false_alarm_max": inside[worst]["false_alarm"],
        "aa_false_alarm_max_se": inside[worst]["monte_carlo_se"],
        "aa_false_alarm_max_row": worst,
        "aa_nulls": len(nulls(seed)),
    }


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
    for start in range(0, runs, CHUNK):
        shape = (min(CHUNK, runs - start), events)
        data = {  # d, worse when positive, the metric's default test
            "correct": (sim_correct(rng, shape, 0.9, 0.9), False, first_alert_sequential),
            "latency_ms": (sim_latency(rng, shape), True, first_alert_asymptotic),
            "error": (sim_correct(rng, shape, 0.01, 0.01), True, first_alert_sequential),
            "abs_error": (sim_abs_error(rng, shape, 1.0), True, first_alert_asymptotic),
        }
        seq_t, naive_t = [], []
        for name, (d, worse_pos, first_alert) in data.items():
            t = first_alert(d, worse_pos, a_rule)
            per[name].append(t)
            if name != "abs_error":
                seq_t.append(t)
                naive_t.append(first_alert_naive(d, worse_pos, a_rule))
        seq_any.append(np.minimum.reduce(seq_t))
        naive_any.append(np.minimum.reduce(naive_t))

    def rate(ts: list[Arr]) -> float:
        return float(np.mean(np.isfinite(np.concatenate(ts))))

    # detection: accuracy 90% -> 88% (msprt), MAE +5% (asymptotic_cs)
    det_acc, det_mae = [], []
    for start in range(0, runs, CHUNK):
        shape = (min(CHUNK, runs - start), events)
        det_acc.append(first_alert_sequential(sim_correct(rng, shape, 0.9, 0.88), False, a_rule))
        det_mae.append(first_alert_asymptotic(sim_abs_error(rng, shape, MAE_K), True, a_rule))
    big = sim_abs_error(rng, (20, 100_000), MAE_K).ravel()
    n_fix_acc = mcnemar_n(0.9, 0.88, ALPHA, 0.8)
    n_fix_mae = paired_n(float(big.mean()), float(big.std(ddof=1)), ALPHA, 0.8)
    acc, mae = np.concatenate(det_acc), np.concatenate(det_mae)
    guard = guardrail_checks(rng, runs, events)
    aa = battery(rng, runs, events, seed)
    late = late_labels(rng, runs, events)
    aa["aa_battery"]["late_labels_log_loss/ppi"] = late.pop("late_labels_log_loss/ppi")
    rows = aa["aa_battery"]
    inside = {k: v for k, v in rows.items() if v["in_hypothesis"]}
    worst = max(inside, key=lambda k: inside[k]["false_alarm"])
    aa["aa_false_alarm_max"] = inside[worst]["false_alarm"]
    aa["aa_false_alarm_max_se"] = inside[worst]["monte_carlo_se"]
    aa["aa_false_alarm_max_row"] = worst
    return {
        **aa,
        **late,
        "aa_false_alarm_target": 0.06,
        "aa_false_alarm_default_rules": rate(seq_any),
        "aa_false_alarm_default_rules_se": round(math.sqrt(0.05 * 0.95 / runs), 4),
        "naive_false_alarm": float(np.mean(np.isfinite(np.concatenate(naive_any)))),
        "aa_false_alarm_per_rule": {k: rate(v) for k, v in per.items()},
        "detect_ratio": float(np.median(acc) / n_fix_acc),
        "detect_median_events": float(np.median(acc)),
        "detect_fixed_horizon_n": round(n_fix_acc, 1),
        "detect_share_flagged": float(np.mean(np.isfinite(acc))),
        "detect_ratio_mae": float(np.median(mae) / n_fix_mae),
        "detect_mae_increase": MAE_K - 1.0,
        "detect_median_events_mae": float(np.median(mae)),
        "detect_fixed_horizon_n_mae": round(n_fix_mae, 1),
        "detect_share_flagged_mae": float(np.mean(np.isfinite(mae))),
        **guard,
        "alpha": ALPHA,
        "rule_alpha": a_rule,
        "min_samples": DEFAULT_MIN_SAMPLES,
        "tune_n": DEFAULT_TUNE_N,
        "skew_factor": SKEW_FACTOR,
        "runs": runs,
        "events": events,
        "seed": seed,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object (default)")
    ap.add_argument("--quick", action="store_true", help="100 runs x 5,000 events")
    ap.add_argument("--runs", type=int, default=300)
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
