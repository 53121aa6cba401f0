"""``shadow-eval replay FILE... --experiments EXP.toml``: backtest logged traffic offline."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

__all__ = ["replay"]


@click.command()
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))  # fmt: skip
@click.option("--experiments", "experiments_path", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="The experiments file (TOML).")  # fmt: skip
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the HTML report here.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def replay(
    files: tuple[Path, ...], experiments_path: Path, report: Path | None, as_json: bool
) -> None:
    """Run the join and the statistics over logged traffic, as the streaming agent would.

    FILES are JSON Lines (one record per line, "type": "prediction" | "ground_truth") or
    Avro container files of Prediction / GroundTruth records. Prints the same summary
    table as the demo (or JSON with --json) and optionally writes the HTML report.
    """
    from rich.console import Console

    from streams.join.experiments import ConfigError, load
    from streams.replay import TrafficError
    from streams.replay import replay as run_replay
    from streams.report import render_summary, summary_rows, write_html

    try:
        experiments = load(experiments_path)
        run = run_replay(files, experiments)
    except (ConfigError, TrafficError) as exc:
        raise click.ClickException(str(exc)) from None
    run.notes["experiments file"] = str(experiments_path)
    if report is not None:
        write_html(run, report)
    if as_json:
        payload = {
            "experiments": [row.to_dict() for row in summary_rows(run)],
            "alerts": len(run.alerts),
            "records": int(run.notes["records"]),
            "report": None if report is None else str(report),
        }
        click.echo(json.dumps(payload, indent=2))
        return
    console = Console(width=None if sys.stdout.isatty() else 140)
    render_summary(run, console)
    if report is not None:
        console.print(f"HTML report: [bold]{report}[/]")
