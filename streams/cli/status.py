"""``shadow-eval status``: consumer lag, join hit rates and verdicts, from the broker."""

from __future__ import annotations

import json
import sys

import click

from streams.cli.options import kafka_options, settings_from

__all__ = ["status"]


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


@click.command()
@kafka_options
@click.option("--group", "groups", multiple=True, help="Also report this consumer group.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option("--timeout", type=click.FloatRange(min=1), default=10.0, show_default=True)
def status(
    bootstrap: str | None,
    topic_prefix: str | None,
    groups: tuple[str, ...],
    as_json: bool,
    timeout: float,
) -> None:
    """Lag of the shadow workers and the join agent, join hit rates and current verdicts,
    and each worker process's prediction rate, CPU share and memory."""
    from rich.console import Console
    from rich.table import Table

    from streams.status import StatusError, collect_status

    settings = settings_from(bootstrap, topic_prefix)
    try:
        result = collect_status(settings, groups, timeout)
    except StatusError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    console = Console(width=None if sys.stdout.isatty() else 140)
    lag = Table(title=f"consumer groups on {result.bootstrap}", title_justify="left")
    for column in ("group", "state", "members", "lag", "by topic"):
        lag.add_column(column)
    for group in result.groups:
        topics = ", ".join(f"{t}={n}" for t, n in sorted(group.lag.items()))
        lag.add_row(group.group, group.state, str(group.members), str(group.total), topics)
    console.print(lag if result.groups else "No shadow-eval consumer groups found.")
    health = Table(title="experiments", title_justify="left")
    for column in ("experiment", "paired", "pair rate", "labelled", "label rate", "verdict",
                   "reason"):  # fmt: skip
        health.add_column(column, overflow="fold")
    for h in result.experiments:
        health.add_row(h.experiment, str(h.paired), _rate(h.pair_rate), str(h.labelled),
                       _rate(h.label_rate), h.decision.upper(), h.reason)  # fmt: skip
    console.print(health if result.experiments else "No metrics snapshots yet.")
    if result.workers:
        workers = Table(title="shadow workers (recent predictions)", title_justify="left")
        for column in ("model", "version", "worker", "predictions", "rate /s", "CPU (cores)",
                       "RSS MiB", "peak MiB"):  # fmt: skip
            workers.add_column(column, overflow="fold")
        for w in result.workers:
            workers.add_row(w.model, w.version, w.worker, str(w.predictions), _number(w.rate),
                            _number(w.cpu_share, 2), _number(w.rss_mb, 0),
                            _number(w.peak_mb, 0))  # fmt: skip
        console.print(workers)
