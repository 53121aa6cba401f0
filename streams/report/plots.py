"""The report's figures as PNG bytes; matplotlib ``Figure`` objects, no pyplot global state."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

from matplotlib.figure import Figure

from streams.records import MetricsSnapshot
from streams.report.model import SEQUENTIAL_TESTS, RunResult, find_result, trajectory_points

__all__ = ["figures", "latency_figure", "segment_figure", "trajectory_figure", "verdict_figure"]

ALPHA = 0.05


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def _seconds(snapshots: Sequence[MetricsSnapshot], start_ms: int) -> list[float]:
    return [(s.timestamp_ms - start_ms) / 1000 for s in snapshots]


def _finite(value: float | None) -> float:
    return math.nan if value is None or not math.isfinite(value) else value


def trajectory_figure(run: RunResult, metric: str) -> bytes:
    """Effect (candidate - live) of ``metric`` over time with its confidence sequence."""
    figure = Figure(figsize=(8, 3.6))
    axes = figure.subplots()
    for name in run.experiments:
        points = trajectory_points(run.snapshots[name], metric, run.start_ms)
        if not points:
            continue
        xs = [p.seconds for p in points]
        (line,) = axes.plot(xs, [p.effect for p in points], label=name)
        axes.fill_between(
            xs, [p.low for p in points], [p.high for p in points], color=line.get_color(), alpha=0.2
        )
    axes.axhline(0.0, color="black", linewidth=0.8)
    axes.set_xlabel("seconds since the first snapshot")
    axes.set_ylabel(f"Δ {metric} (candidate - live)")
    axes.set_title(f"{metric}: effect and anytime-valid interval over time")
    if axes.lines[1:]:
        axes.legend(loc="best", fontsize="small")
    return _png(figure)


def verdict_figure(run: RunResult) -> bytes:
    """p-value and e-value paths of each experiment's primary metric (mSPRT)."""
    figure = Figure(figsize=(10, 3.6))
    p_axes, e_axes = figure.subplots(1, 2)
    start = run.start_ms
    for name in run.experiments:
        metric = run.primary(name)
        kept = [
            (s, r)
            for s in run.snapshots[name]
            if (r := find_result(s, metric)) is not None and r.n > 0
        ]
        if not kept:
            continue
        xs = _seconds([s for s, _ in kept], start)
        p_axes.plot(xs, [max(_finite(r.pvalue), 1e-300) for _, r in kept], label=name)
        e_axes.plot(xs, [max(_finite(r.evalue), 1e-300) for _, r in kept], label=name)
    p_axes.axhline(ALPHA, color="red", linestyle="--", linewidth=0.8, label=f"alpha={ALPHA}")
    e_axes.axhline(
        1 / ALPHA, color="red", linestyle="--", linewidth=0.8, label=f"1/alpha={1 / ALPHA:g}"
    )
    for axes, what in ((p_axes, "anytime-valid p-value"), (e_axes, "e-value")):
        axes.set_yscale("log")
        axes.set_xlabel("seconds since the first snapshot")
        axes.set_title(f"primary metric: {what}")
        axes.legend(loc="best", fontsize="small")
    return _png(figure)


def latency_figure(latencies: dict[str, list[float]]) -> bytes:
    """Histograms (log-spaced bins) of each version's prediction latency."""
    figure = Figure(figsize=(8, 3.6))
    axes = figure.subplots()
    values = [v for vs in latencies.values() for v in vs if v > 0]
    if values:
        low, high = max(min(values), 1e-3), max(values)
        bins = [low * (high / low) ** (i / 40) for i in range(41)] if high > low else 20
        for label, vs in sorted(latencies.items()):
            positive = [v for v in vs if v > 0]
            if positive:
                axes.hist(positive, bins=bins, alpha=0.5, label=f"{label} (n={len(positive)})")
        if high > low:
            axes.set_xscale("log")
        axes.legend(loc="best", fontsize="small")
    axes.set_xlabel("latency (ms)")
    axes.set_ylabel("predictions")
    axes.set_title("prediction latency by model version")
    return _png(figure)


def segment_figure(run: RunResult, metric: str) -> bytes:
    """Latest effect and interval of ``metric`` per segment value, one row per experiment."""
    figure = Figure(figsize=(8, 3.6))
    axes = figure.subplots()
    labels: list[str] = []
    offset = 0
    for name in run.experiments:
        results = sorted(
            (
                r
                for r in run.final(name).results
                if r.metric == metric and r.test in SEQUENTIAL_TESTS
            ),
            key=lambda r: r.segment,
        )
        ys = list(range(offset, offset + len(results)))
        effects = [_finite(r.effect) for r in results]
        errors = [
            [max(e - _finite(r.ci_low), 0.0) for e, r in zip(effects, results, strict=True)],
            [max(_finite(r.ci_high) - e, 0.0) for e, r in zip(effects, results, strict=True)],
        ]
        axes.errorbar(effects, ys, xerr=errors, fmt="o", capsize=3, label=name)
        labels += [f"{name} {r.segment or 'all'}" for r in results]
        offset += len(results)
    axes.axvline(0.0, color="black", linewidth=0.8)
    axes.set_yticks(range(len(labels)), labels, fontsize="small")
    axes.set_xlabel(f"Δ {metric} (candidate - live)")
    axes.set_title(f"{metric} by segment (latest snapshot)")
    figure.set_size_inches(8, max(2.5, 0.35 * len(labels) + 1.2))
    return _png(figure)


def figures(run: RunResult) -> list[tuple[str, str, bytes]]:
    """``(section id, caption, png)`` of every figure of the report."""
    out: list[tuple[str, str, bytes]] = []
    primaries = sorted({run.primary(name) for name in run.experiments})
    metrics = [*primaries, *(m for m in ("correct", "abs_error") if m not in primaries)]
    has = {r.metric for name in run.experiments for r in run.final(name).results}
    for metric in metrics:
        if metric in has:
            out.append(
                (f"trajectory-{metric}", f"{metric} over time", trajectory_figure(run, metric))
            )
    if run.experiments:
        out.append(("evidence", "p-value and e-value paths", verdict_figure(run)))
    if run.latencies:
        out.append(("latency", "latency distributions", latency_figure(run.latencies)))
    for metric in primaries:
        if metric in has:
            out.append((f"segments-{metric}", f"{metric} by segment", segment_figure(run, metric)))
    return out
