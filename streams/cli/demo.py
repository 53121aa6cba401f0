"""``shadow-eval demo``: the end-to-end demo; ``shadow-eval demo serve``: its serving app."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import click

from streams.cli.options import kafka_options, settings_from

__all__ = ["demo"]


@click.group(invoke_without_command=True)
@click.option("--requests", "requests_n", type=click.IntRange(min=50), default=3000,
              show_default=True, help="Requests the serving app answers.")  # fmt: skip
@click.option("--rate", type=click.FloatRange(min=1), default=40.0, show_default=True,
              help="Requests per second.")  # fmt: skip
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("reports/shadow-eval-demo.html"), show_default=True,
              help="Where the HTML report goes.")  # fmt: skip
@click.option("--traffic", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("reports/demo-traffic.jsonl"), show_default=True,
              help="Where the recorded traffic (JSON Lines) goes.")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True)
@click.pass_context
def demo(
    ctx: click.Context, requests_n: int, rate: float, report: Path, traffic: Path, seed: int
) -> None:
    """Run the whole story on this machine: Kafka, serving app, shadow workers, join agent.

    Starts a local Kafka broker, trains a live model and two candidates (scikit-learn's
    breast-cancer dataset), runs the candidates in `shadow-eval worker` processes and the
    `shadow-eval join` agent, serves REQUESTS requests with late, out-of-order labels, then
    prints the verdicts and alerts, writes an HTML report and a replayable traffic log.
    Everything it started is stopped at the end, also on Ctrl-C.
    """
    if ctx.invoked_subcommand is not None:
        return
    import logging

    from rich.console import Console

    from streams.demo import DemoOptions, run_demo

    logging.getLogger().setLevel(logging.WARNING)  # the console shows progress instead
    options = DemoOptions(requests=requests_n, rate=rate, report=report, traffic=traffic, seed=seed)
    ctx.exit(run_demo(options, Console(width=None if sys.stdout.isatty() else 140)))


@demo.command()
@kafka_options
@click.option("--requests", "requests_n", type=click.IntRange(min=1), default=None,
              help="Stop after this many requests [forever].")  # fmt: skip
@click.option("--rate", type=click.FloatRange(min=0.1), default=20.0, show_default=True)
@click.option("--model", default="churn", show_default=True, help="Model name published.")
@click.option("--version", "version", default="v1", show_default=True, help="Live version.")
@click.option("--label-delay", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="Labels arrive up to this many seconds late.")  # fmt: skip
def serve(
    bootstrap: str | None,
    topic_prefix: str | None,
    requests_n: int | None,
    rate: float,
    model: str,
    version: str,
    label_delay: float,
) -> None:
    """Serve the demo's live model against an existing broker (docker-compose's demo-app).

    SIGTERM or Ctrl-C stops it after flushing what was published.
    """
    from streams.demo.serve import serve as run_serve

    settings = settings_from(bootstrap, topic_prefix)
    stop = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    served = run_serve(
        settings, stop, model=model, version=version, requests_n=requests_n, rate=rate,
        max_label_delay_s=max(label_delay, 0.2),
    )  # fmt: skip
    click.echo(f"served {served} requests")
