"""Figures as inline SVG text, drawn without matplotlib: light enough to redraw on every
snapshot (the live experiment page), and self-contained (no script, no external resource).

The data come from the same functions as the report's PNGs (:func:`trajectory_points`),
so the page and the report plot the same series.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from streams.report.model import SEQUENTIAL_TESTS, RunResult, TrajectoryPoint, trajectory_points
from streams.report.summary import model_label

__all__ = ["MAX_CHARTS", "experiment_charts", "trajectory_svg"]

MAX_CHARTS = 6
"""Trajectories drawn per experiment: primary, model metric, KPIs, then the others."""
_RANK = {"primary": 0, "model metric": 1, "business KPI": 2}

WIDTH, HEIGHT = 460, 190
LEFT, RIGHT, TOP, BOTTOM = 58, 12, 26, 34
LINE = "#1f5fbf"
BAND = "#1f5fbf"


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round values spanning [low, high].

    Examples
    --------
    >>> _ticks(0.0, 1.0)
    [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    >>> _ticks(-0.031, 0.012)
    [-0.03, -0.02, -0.01, 0.0, 0.01]
    """
    span = high - low
    if span <= 0:
        return [low]
    raw = span / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step - 1e-9)
    return [round(i * step, 12) + 0.0 for i in range(first, math.floor(high / step + 1e-9) + 1)]


def _label(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000 or abs(value) < 0.001:
        return f"{value:.1e}"
    return f"{value:.4g}"


def _finite(value: float) -> bool:
    return math.isfinite(value)


def trajectory_svg(points: Sequence[TrajectoryPoint], title: str, ylabel: str) -> str:
    """The effect over time (a line) inside its interval (a band), zero marked.

    Examples
    --------
    >>> svg = trajectory_svg([TrajectoryPoint(0, 0.1, -0.2, 0.4),
    ...                       TrajectoryPoint(5, 0.05, -0.05, 0.15)], "<Δ>", "Δ")
    >>> svg.startswith("<svg") and "&lt;Δ&gt;" in svg and "<polyline" in svg
    True
    >>> "no data yet" in trajectory_svg([], "t", "y")
    True
    """
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(title)}">'
        f'<text x="{LEFT}" y="16" class="chart-title" font-size="12" font-weight="600" '
        f'fill="#222">{escape(title)}</text>'
    )
    kept = [p for p in points if _finite(p.effect)]
    if not kept:
        return (
            head + f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" font-size="12" '
            'fill="#777">no data yet</text></svg>'
        )
    values = [0.0, *(v for p in kept for v in (p.effect, p.low, p.high) if _finite(v))]
    y_low, y_high = min(values), max(values)
    if y_high - y_low < 1e-12:
        y_low, y_high = y_low - 1.0, y_high + 1.0
    pad = (y_high - y_low) * 0.06
    y_low, y_high = y_low - pad, y_high + pad
    x_low, x_high = kept[0].seconds, max(kept[-1].seconds, kept[0].seconds + 1e-9)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(seconds: float) -> float:
        return LEFT + (seconds - x_low) / (x_high - x_low) * plot_w

    def y(value: float) -> float:
        return TOP + (y_high - value) / (y_high - y_low) * plot_h

    parts = [head]
    for tick in _ticks(y_low, y_high, 4):
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
            f'stroke="#e6e6e6" stroke-width="1"/>'
            f'<text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" font-size="10" '
            f'fill="#555">{_label(tick)}</text>'
        )
    for tick in _ticks(x_low, x_high, 5):
        parts.append(
            f'<text x="{x(tick):.1f}" y="{HEIGHT - BOTTOM + 14}" text-anchor="middle" '
            f'font-size="10" fill="#555">{_label(tick)}</text>'
        )
    banded = [p for p in kept if _finite(p.low) and _finite(p.high)]
    if len(banded) > 1:
        upper = " ".join(f"{x(p.seconds):.1f},{y(p.high):.1f}" for p in banded)
        lower = " ".join(f"{x(p.seconds):.1f},{y(p.low):.1f}" for p in reversed(banded))
        parts.append(f'<polygon points="{upper} {lower}" fill="{BAND}" fill-opacity="0.18"/>')
    parts.append(
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(0.0):.1f}" y2="{y(0.0):.1f}" '
        'stroke="#222" stroke-width="1"/>'
    )
    line = " ".join(f"{x(p.seconds):.1f},{y(p.effect):.1f}" for p in kept)
    parts.append(f'<polyline points="{line}" fill="none" stroke="{LINE}" stroke-width="2"/>')
    last = kept[-1]
    parts.append(
        f'<circle cx="{x(last.seconds):.1f}" cy="{y(last.effect):.1f}" r="3" fill="{LINE}"/>'
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="#bbb" stroke-width="1"/>'
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 6}" text-anchor="middle" font-size="10" '
        f'fill="#555">seconds since the first snapshot</text>'
        f'<text transform="translate(12 {TOP + plot_h / 2}) rotate(-90)" text-anchor="middle" '
        f'font-size="10" fill="#555">{escape(ylabel)}</text></svg>'
    )
    return "".join(parts)


def experiment_charts(run: RunResult, experiment: str, limit: int = MAX_CHARTS) -> list[str]:
    """The trajectory of each metric of ``experiment`` whose anytime-valid interval is
    bounded in the latest snapshot: primary first, then model metric, KPIs, the others.

    Examples
    --------
    >>> from streams.records import MetricResult, MetricsSnapshot
    >>> run = RunResult("r", primary_metrics={"e": "late"})
    >>> for t, n in ((0, 5), (1000, 9)):
    ...     run.add_snapshot(MetricsSnapshot("e", "m", "v1", "v2", t, {}, (
    ...         MetricResult("late", "msprt", n, effect=0.1, ci_low=-0.1, ci_high=0.3),
    ...         MetricResult("error", "msprt", n, effect=0.0)), "continue", ""))
    >>> [svg.count("<polyline") for svg in experiment_charts(run, "e")]
    [1]
    """
    roles = run.roles(experiment)
    bounded = {
        r.metric
        for r in run.final(experiment).results
        if r.segment == ""
        and r.test in SEQUENTIAL_TESTS
        and r.ci_low is not None
        and r.ci_high is not None
    }
    metrics = sorted(bounded, key=lambda m: (_RANK.get(roles.get(m, ""), 3), m))[:limit]
    start = run.start_ms
    return [
        trajectory_svg(
            trajectory_points(run.snapshots[experiment], metric, start),
            model_label(metric) + (f" ({roles[metric]})" if metric in roles else ""),
            f"Δ {model_label(metric)}",
        )
        for metric in metrics
    ]
