"""``shadow-eval ingest``: capture live traffic without a code change in the serving app."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click
from prometheus_client import REGISTRY

from streams.cli.options import kafka_options, settings_from

__all__ = ["ingest"]


@click.group()
def ingest() -> None:
    """Publish inputs and live predictions that a serving platform logs."""


@ingest.command("cloudevents")
@kafka_options
@click.option(
    "--port",
    type=click.IntRange(min=0, max=65535),
    required=True,
    help="Port of the HTTP endpoint the inference logger POSTs to.",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address it binds (0.0.0.0: every interface, e.g. in a pod).",
)
@click.option("--version", "version", required=True, help="The live version, e.g. v1.")
@click.option("--model", help="Model name of every record [the event's inferenceservicename].")
@click.option("--features", help="Comma-separated names of unnamed feature columns [f0,f1,...].")
@click.option("--sample-rate", type=click.FloatRange(0, 1), default=1.0, show_default=True)
@click.option("--deny", multiple=True, help="A feature never published (repeatable).")
@click.option("--pair-ttl", type=click.FloatRange(min=1), default=300.0, show_default=True,
              help="Seconds a request waits for its response event (and back).")  # fmt: skip
def cloudevents(
    bootstrap: str | None,
    topic_prefix: str | None,
    port: int,
    host: str,
    version: str,
    model: str | None,
    features: str | None,
    sample_rate: float,
    deny: tuple[str, ...],
    pair_ttl: float,
) -> None:
    """Accept KServe inference-logger CloudEvents (binary or structured) on --port, pair
    request and response by event id, publish them through the hook. GET /metrics gives
    the counts; SIGTERM flushes and exits 0."""
    try:
        from streams.ingest.kserve import CloudEventsIngest, serve
    except ImportError as exc:
        raise click.ClickException(
            f"needs the ingest extra (pip install 'shadow-eval[ingest]'): {exc}"
        ) from None
    from streams.hook import ShadowPublisher
    from streams.ingest import Pairing

    settings = settings_from(bootstrap, topic_prefix)
    columns = [f.strip() for f in features.split(",") if f.strip()] if features else None
    publisher = ShadowPublisher(
        settings, model=model or "ingest", version=version, sample_rate=sample_rate,
        deny=deny, close_at_exit=False,
    )  # fmt: skip
    ingestor = CloudEventsIngest(
        publisher.publish, version=version, model=model, columns=columns,
        pairing=Pairing(ttl_s=pair_ttl), registry=REGISTRY,
    )  # fmt: skip
    try:
        server = serve(ingestor, port, host)
    except OSError as exc:
        publisher.close()
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from None
    click.echo(f"ingesting CloudEvents on http://{host}:{server.server_address[1]}/", err=True)
    stop = threading.Event()

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    while not stop.wait(5.0):
        ingestor.pairing.expire()
    server.shutdown()
    left = publisher.close()
    if left:
        raise click.ClickException(f"{left} records still undelivered at exit")
