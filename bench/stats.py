"""Throughput of the statistics core.  Prints ONE JSON object.

* ``update_us``: median microseconds per ``update`` (steady state: in a full count window each
  update also reverts the oldest pair, and the work a window defers to its next read, feeding
  its batch statistics, is counted in), per test; rank tests at windows of 1e3, 1e4 and 1e5 to
  show the growth.  Side by side, ``baseline_update_us``: the interpreter floor, a minimal
  Python accumulator (``n += 1; s += y - x``) timed the same way, and each test's ratio to it.
* ``evaluate_ms``: median milliseconds of ``ExperimentMonitor.evaluate`` on a 100,000-event
  window, for the default rules (+ verdict) alone and for every test the monitor reports;
  ``baseline_scipy_batch_ms``: scipy.stats batch functions on the same 100,000 pairs.

Usage: ``python bench/stats.py --json [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streams.stats import (
    KS,
    PSI,
    Agreement,
    AsymptoticCS,
    ChiSquare,
    ExperimentMonitor,
    MannWhitney,
    McNemar,
    MixtureSPRT,
    Observation,
    PairedT,
    QuantileCS,
    QuantileRatio,
    SignTest,
    TwoProportions,
    Wilcoxon,
    Window,
)
from streams.stats.monitor_types import ALL


class Floor:
    """Baseline: the cheapest possible online update in Python."""

    __slots__ = ("n", "s")

    def __init__(self) -> None:
        self.n, self.s = 0, 0.0

    def update(self, x: float, y: float) -> Floor:
        self.n += 1
        self.s += y - x
        return self


def per_update_us(
    stat: Any, data: list[tuple[Any, Any]], prefill: int, batch: int = 2000, batches: int = 7
) -> float:
    """Median over batches of the mean time per update, after ``prefill`` updates."""
    upd = stat.update
    for x, y in data[:prefill]:
        upd(x, y)
    times = []
    pos = prefill
    for _ in range(batches):
        chunk = data[pos : pos + batch]
        pos += batch
        t0 = time.perf_counter_ns()
        for x, y in chunk:
            upd(x, y)
        if isinstance(stat, Window):
            stat.expire(0.0)  # a count window: only feeds its batch statistics
        times.append((time.perf_counter_ns() - t0) / len(chunk) / 1000.0)
    return round(statistics.median(times), 3)


def run(quick: bool) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    sizes = [1000, 10_000] if quick else [1000, 10_000, 100_000]
    total = max(sizes) + 20_000
    x = rng.lognormal(3, 0.5, total).round(2)
    y = (x * rng.lognormal(0, 0.2, total)).round(2)
    num = list(zip(x.tolist(), y.tolist(), strict=True))
    bits = [
        (float(a), float(b))
        for a, b in zip(rng.random(total) < 0.9, rng.random(total) < 0.9, strict=True)
    ]
    labs = np.array(list("abcde"))
    cat = list(
        zip(
            labs[rng.integers(0, 5, total)].tolist(),
            labs[rng.integers(0, 5, total)].tolist(),
            strict=True,
        )
    )
    base = per_update_us(Floor(), num, 1000)
    flat: dict[str, tuple[Callable[[], Any], list[Any]]] = {
        "paired_t": (PairedT, num),
        "paired_t_window_10k": (lambda: Window(PairedT(), size=10_000), num),
        "msprt": (lambda: MixtureSPRT("greater"), num),
        "asymptotic_cs": (lambda: AsymptoticCS("greater"), num),
        "quantile_cs_p99": (lambda: QuantileCS(0.99, "greater"), num),
        "sign": (SignTest, num),
        "mcnemar": (McNemar, bits),
        "two_proportions": (TwoProportions, bits),
        "chi2": (ChiSquare, cat),
        "psi": (PSI, cat),
        "agreement": (Agreement, cat),
    }
    upd: dict[str, Any] = {}
    for name, (make, data) in flat.items():
        upd[name] = per_update_us(make(), data, 10_000)
    ranked: dict[str, Callable[[], Any]] = {
        "wilcoxon": Wilcoxon,
        "ks": KS,
        "mannwhitney": MannWhitney,
        "quantile_ratio": QuantileRatio,
    }
    for name, make in ranked.items():
        upd[name] = {f"n={n}": per_update_us(Window(make(), size=n), num, n) for n in sizes}
    ratios = {
        k: (
            round(v / base, 2)
            if isinstance(v, float)
            else {n: round(t / base, 2) for n, t in v.items()}
        )
        for k, v in upd.items()
    }
    out: dict[str, Any] = {
        "baseline_update_us": base,
        "update_us": upd,
        "update_ratio_to_baseline": ratios,
        "target_update_us_mean_and_sequential": 5.0,
    }
    out.update(evaluate(quick))
    return out


def evaluate(quick: bool) -> dict[str, Any]:
    n = 20_000 if quick else 100_000
    rng = np.random.default_rng(1)
    cfg = {
        "name": "bench",
        "primary_metric": "correct",
        "window": n,
        "guardrails": [{"metric": "latency_ms", "margin": 0.1, "relative": True}],
    }
    mon = ExperimentMonitor(cfg)
    lat_l = rng.lognormal(3, 0.5, n).round(2)
    lat_c = (lat_l * rng.lognormal(0, 0.2, n)).round(2)
    cor_l, cor_c = rng.random(n) < 0.9, rng.random(n) < 0.9
    err_l, err_c = rng.random(n) < 0.01, rng.random(n) < 0.01
    cls_l, cls_c = rng.integers(0, 5, n).astype(str), rng.integers(0, 5, n).astype(str)
    for i in range(n):
        mon.update(
            Observation(
                i,
                {},
                {
                    "correct": (float(cor_l[i]), float(cor_c[i])),
                    "latency_ms": (float(lat_l[i]), float(lat_c[i])),
                    "error": (float(err_l[i]), float(err_c[i])),
                },
                {"predicted_class": (str(cls_l[i]), str(cls_c[i]))},
            )
        )

    def timed(fn: Callable[[], object], reps: int = 5) -> float:
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            ts.append((time.perf_counter() - t0) * 1000)
        return round(statistics.median(ts), 3)

    def default_rules() -> None:
        for st in mon._rule_stats.values():
            st.get()

    ev = mon.evaluate(n)
    n_tests = sum(len(v[ALL]) for v in ev.results.values())

    def scipy_batch() -> None:
        stats.ttest_rel(lat_c, lat_l)
        stats.wilcoxon(lat_c, lat_l, method="asymptotic")
        stats.mannwhitneyu(lat_c, lat_l, method="asymptotic")
        stats.ks_2samp(lat_l, lat_c, method="asymp")
        np.quantile(lat_c, [0.5, 0.95, 0.99])
        np.quantile(lat_l, [0.5, 0.95, 0.99])
        b = int(np.sum(cor_l & ~cor_c))
        c = int(np.sum(~cor_l & cor_c))
        stats.chi2.sf((abs(b - c) - 1) ** 2 / (b + c), 1)
        t = np.array([[np.sum(cls_l == k) for k in "01234"], [np.sum(cls_c == k) for k in "01234"]])
        stats.chi2_contingency(t)

    return {
        "evaluate_window_events": n,
        "evaluate_ms_default_rules": timed(default_rules),
        "evaluate_ms_all_tests": timed(lambda: mon.evaluate(n)),
        "evaluate_tests_reported": n_tests,
        "baseline_scipy_batch_ms": timed(scipy_batch),
        "target_evaluate_ms": 20.0,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="statistics core throughput")
    ap.add_argument("--json", action="store_true", help="print one JSON object (default)")
    ap.add_argument("--quick", action="store_true", help="windows up to 1e4, 20k-event eval")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    out = run(args.quick)
    out["evaluate_ratio_all_tests_to_scipy"] = round(
        out["evaluate_ms_all_tests"] / out["baseline_scipy_batch_ms"], 2
    )
    out["seconds"] = round(time.perf_counter() - t0, 2)
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
