"""``shadow-eval worker``: run one candidate model version on every input."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import click

from streams.cli.oip import oip_candidate, oip_options
from streams.cli.options import kafka_options, settings_from
from streams.codec import RegistryError
from streams.process_cost import WorkerCost, load_measured
from streams.topics import TopicError
from streams.worker import (
    ModelAdapter,
    ModelLoadError,
    ShadowWorker,
    UserCodeError,
    WorkerConfig,
    WorkerError,
    load_model,
    load_model_file,
)
from streams.worker.isolate import IsolatedModel, ModelSource
from streams.worker.loading import model_label
from streams.worker.metrics import serve_metrics
from streams.worker.model import DEFAULT_THREADS

__all__ = ["worker"]


def _load(model_spec: str | None, model_file: Path | None) -> Any:
    if (model_spec is None) == (model_file is None):
        raise click.UsageError("give exactly one of --model MODULE:CALLABLE or --model-file PATH")
    try:
        if model_spec is not None:
            return load_model(model_spec)
        assert model_file is not None
        return load_model_file(model_file)
    except UserCodeError as exc:  # not a usage error: one line, no usage text
        raise click.ClickException(f"--model {exc}") from None
    except ModelLoadError as exc:
        hint = "--model" if model_spec is not None else "--model-file"
        raise click.BadParameter(str(exc), param_hint=hint) from None


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@click.command()
@kafka_options
@oip_options
@click.option("--model", "model_spec", metavar="MODULE:CALLABLE", help="The candidate model.")
@click.option(
    "--model-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A joblib/pickle file with the model (trusted files only) instead of --model.",
)
@click.option("--version", "version",
              help="The candidate version, e.g. v2 [--oip-version with --oip-url].")  # fmt: skip
@click.option("--name", help="Candidate name for group id, metrics, logs [from the model].")
@click.option("--only-model", help="Score only inputs whose ModelInput.model is this.")
@click.option("--features", help="Comma-separated feature names (estimator column order).")
@click.option("--batch-size", type=click.IntRange(min=1), default=500, show_default=True)
@click.option("--batch-ms", type=click.FloatRange(min=0), default=50.0, show_default=True)
@click.option(
    "--timeout-ms",
    type=click.FloatRange(min=0),
    default=5000.0,
    show_default=True,
    help="Deadline of one model call; 0 = none.",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=DEFAULT_THREADS,
    show_default=True,
    help="Threads running model calls under the deadline (with --isolate process: child "
    "processes); a thread stuck in a late call is not replaced, and while all are stuck "
    "the worker takes no inputs.",
)
@click.option(
    "--isolate",
    type=click.Choice(["thread", "process"]),
    default="thread",
    show_default=True,
    help="process: run the model in a child process, killed and restarted when a call "
    "misses its deadline or the process dies (no input lost or scored twice).",
)
@click.option("--group-id", help="Consumer group [shadow-worker.<name>.<version>].")
@click.option("--start", type=click.Choice(["earliest", "latest"]), default="earliest",
              show_default=True, help="Where a new group starts reading.")  # fmt: skip
@click.option("--session-timeout-ms", type=click.IntRange(min=1000), default=45000,
              show_default=True)  # fmt: skip
@click.option("--metrics-port", type=click.IntRange(min=0), default=0, show_default=True,
              help="Prometheus /metrics port; 0 = off.")  # fmt: skip
@click.option("--metrics-addr", default="127.0.0.1", show_default=True,
              help="Address /metrics binds (0.0.0.0: every interface, e.g. in a pod).")  # fmt: skip
@click.option("--status-every", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="Seconds between status lines; 0 = off.")  # fmt: skip
def worker(
    bootstrap: str | None,
    topic_prefix: str | None,
    model_spec: str | None,
    model_file: Path | None,
    version: str | None,
    name: str | None,
    only_model: str | None,
    features: str | None,
    batch_size: int,
    batch_ms: float,
    timeout_ms: float,
    threads: int,
    isolate: str,
    group_id: str | None,
    start: str,
    session_timeout_ms: int,
    metrics_port: int,
    metrics_addr: str,
    status_every: float,
    oip: dict[str, Any],
) -> None:
    """Run a candidate model on every input and publish its shadow predictions.

    Each candidate version has its own consumer group, so each sees every input; start
    several processes of one candidate to share the partitions. SIGTERM drains, commits
    and exits 0.
    """
    settings = settings_from(bootstrap, topic_prefix)
    columns = [f.strip() for f in features.split(",") if f.strip()] if features else None
    version = version or oip["oip_version"]
    if version is None:
        raise click.UsageError("--version is required (the candidate version, e.g. v2)")
    if oip["oip_url"] is not None and (model_spec or model_file):
        raise click.UsageError("give --oip-url or a --model/--model-file, not both")
    remote = oip_candidate(oip, columns, timeout_ms)
    load_s = model_mb = None  # a remote candidate's cost is its server's, not ours
    if remote is None:
        model, load_s, model_mb = load_measured(lambda: _load(model_spec, model_file))
    else:
        model = remote
    try:
        if isolate == "process":
            if remote is not None:
                raise click.BadParameter(
                    "a remote --oip-url candidate runs in its own server", param_hint="--isolate"
                )
            if not timeout_ms:
                raise click.BadParameter(
                    "needs a deadline (--timeout-ms > 0)", param_hint="--isolate"
                )
            path = None if model_file is None else str(model_file)
            source = ModelSource(model_spec, path, tuple(columns) if columns else None)
            adapter: ModelAdapter = IsolatedModel(
                model, source, timeout_ms=timeout_ms, processes=threads
            )
        else:
            adapter = ModelAdapter(
                model, features=columns, timeout_ms=timeout_ms or None, threads=threads
            )
    except TypeError as exc:
        raise click.BadParameter(str(exc), param_hint="--model") from None
    config = WorkerConfig(
        name=name or only_model or oip["oip_model"] or model_label(model_spec, model_file),
        only_model=only_model,
        group_id=group_id,
        batch_size=batch_size,
        batch_ms=batch_ms,
        start="latest" if start == "latest" else "earliest",
        session_timeout_ms=session_timeout_ms,
        status_every=status_every,
    )
    cost = WorkerCost(load_s=load_s, model_mb=model_mb)
    try:
        shadow = ShadowWorker(settings, adapter, version, config=config, cost=cost)
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None
    if metrics_port:
        serve_metrics(shadow.metrics, metrics_port, addr=metrics_addr)
    stop = threading.Event()
    _stop_on_signals(stop)
    try:
        shadow.run(stop)
    except TopicError as exc:
        raise click.ClickException(str(exc)) from None
    except (WorkerError, RegistryError) as exc:
        raise click.ClickException(f"worker stopped: {exc}") from None
    except RuntimeError as exc:  # the model process cannot start or load the model
        raise click.ClickException(f"--isolate process: {exc}") from None
    finally:
        adapter.close()
        if remote is not None:
            remote.close()
