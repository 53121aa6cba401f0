"""``shadow-eval actions``: run the experiments file's on_promote / on_reject actions."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

import click

from streams.cli.options import kafka_options, settings_from

__all__ = ["actions"]


@click.command()
@kafka_options
@click.option("--experiments", "experiments_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The experiments file the join judges.")  # fmt: skip
def actions(bootstrap: str | None, topic_prefix: str | None, experiments_path: Path) -> None:
    """Run each experiment's on_promote / on_reject actions once per verdict change
    (MLflow alias moves are dry runs until dry_run = false); outcomes go to the alerts
    topic. SIGTERM stops it; a restart does not repeat what was done."""
    from streams.actions import ActionConfigError, ActionRunner, actions_of
    from streams.join.experiments import ConfigError, load

    settings = settings_from(bootstrap, topic_prefix)
    try:
        configured = actions_of(load(experiments_path).experiments)
    except (ConfigError, ActionConfigError) as exc:
        raise click.ClickException(str(exc)) from None
    if not configured:
        raise click.ClickException(f"{experiments_path}: no on_promote or on_reject actions")
    stop = threading.Event()

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    click.echo(f"{len(configured)} actions armed", err=True)
    try:
        ActionRunner(settings, configured).run(stop)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
