"""``shadow-eval kafka``: a local single-node Kafka 4.x broker (KRaft) on loopback."""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import click

from streams.broker import BrokerError, BrokerStatus, LocalBroker, LocalCluster, provision_kafka
from streams.settings import load_settings

__all__ = ["kafka"]

EXIT_STOPPED = 3
F = TypeVar("F", bound=Callable[..., Any])


def _progress(message: str) -> None:
    click.echo(message, err=True)


def _clean_errors(command: F) -> F:
    """Print a ``BrokerError`` as one clear message (no traceback) and exit 1."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except BrokerError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def _broker(data_dir: Path | None, **kwargs: Any) -> LocalBroker:
    return LocalBroker(load_settings(), data_dir, progress=_progress, **kwargs)


def _echo_status(status: BrokerStatus, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(status.to_dict()))
    elif status.running:
        click.echo(
            f"running  pid {status.pid}  bootstrap {status.bootstrap}  "
            f"Kafka {status.version}  data {status.data_dir}"
        )
    else:
        click.echo(f"stopped  data {status.data_dir}")


data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Broker state and logs [default: <cache_dir>/broker].",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
brokers_option = click.option(
    "--brokers",
    type=click.IntRange(1, 9),
    default=1,
    show_default=True,
    help="More than 1: a local cluster (replication factor 3, min.insync.replicas 2) in "
    "<cache_dir>/cluster [or --data-dir]; stop and status find a cluster by its data dir.",
)


def _cluster(data_dir: Path | None, brokers: int, foreground: bool = False) -> LocalCluster | None:
    """The cluster that ``--brokers`` or ``--data-dir`` names, ``None`` for one broker."""
    settings = load_settings()
    directory = data_dir or settings.cache_dir / ("cluster" if brokers > 1 else "broker")
    if brokers == 1 and not LocalCluster.exists(directory):
        return None
    if brokers == 1:
        brokers = int(json.loads((directory / "cluster.json").read_text())["brokers"])
    return LocalCluster(
        settings, directory, brokers=brokers, progress=_progress, die_with_parent=foreground
    )


@click.group()
def kafka() -> None:
    """Run a real single-node Kafka 4.x broker on 127.0.0.1 (Java 17 + Maven, no Docker)."""


@kafka.command()
@click.option("--force", is_flag=True, help="Resolve again even if the jars are cached.")
@_clean_errors
def provision(force: bool) -> None:
    """Fetch the Kafka jars from Maven Central into the cache (once)."""
    runtime = provision_kafka(load_settings().cache_dir, force=force, progress=_progress)
    click.echo(f"Kafka {runtime.version} in {runtime.libs}")


@kafka.command()
@click.option("--port", type=click.IntRange(1, 65535), help="Broker port [default: free port].")
@click.option(
    "--controller-port",
    type=click.IntRange(1, 65535),
    help="KRaft controller port [default: free].",
)
@data_dir_option
@click.option(
    "--foreground/--background",
    default=False,
    help="Stay attached and stop the broker on Ctrl-C, or detach [default: background].",
)
@click.option("--timeout", type=float, default=90.0, show_default=True, help="Seconds to wait.")
@click.option(
    "--secure",
    is_flag=True,
    help="SASL_SSL (SCRAM-SHA-512) and mutual-TLS listeners with ACLs instead of PLAINTEXT; "
    "prints the client.properties of the admin and of each role.",
)
@click.option("--ssl-port", type=click.IntRange(1, 65535), help="mTLS port [default: free].")
@brokers_option
@json_option
@_clean_errors
def start(
    port: int | None,
    controller_port: int | None,
    data_dir: Path | None,
    foreground: bool,
    timeout: float,
    secure: bool,
    ssl_port: int | None,
    brokers: int,
    as_json: bool,
) -> None:
    """Start the broker and print its bootstrap address (127.0.0.1:PORT)."""
    cluster = _cluster(data_dir, brokers, foreground)
    if cluster is not None:
        if secure or port or controller_port:
            raise BrokerError("--secure, --port and --controller-port take one broker only")
        _start_cluster(cluster, timeout, foreground, as_json)
        return
    broker = _broker(
        data_dir,
        port=port,
        controller_port=controller_port,
        die_with_parent=foreground,
        secure=secure or None,
        ssl_port=ssl_port,
    )
    was_running = broker.status().running
    if was_running and secure and not broker.secure:
        raise BrokerError(
            f"a PLAINTEXT broker already runs from {broker.data_dir}; stop it, or start the "
            "secured one with another --data-dir"
        )
    bootstrap = broker.start(timeout=timeout)
    if was_running:
        _progress(f"already running from {broker.data_dir}")
    if as_json:
        out = broker.status().to_dict()
        if broker.secure:
            out["listeners"] = {"SASL_SSL": broker.bootstrap, "SSL": broker.ssl_bootstrap}
            out["ca"] = str(broker.secrets.ca)
            out["client_properties"] = broker.client_properties()
        click.echo(json.dumps(out))
    elif broker.secure:
        click.echo(f"SASL_SSL {broker.bootstrap}  SSL {broker.ssl_bootstrap}")
        for principal, paths in broker.client_properties().items():
            click.echo(f"  {principal:<7} {paths['sasl_ssl']}  {paths['ssl']}")
    else:
        click.echo(bootstrap)
    if foreground:
        _run_in_foreground(broker)


def _start_cluster(cluster: LocalCluster, timeout: float, foreground: bool, as_json: bool) -> None:
    bootstrap = cluster.start(timeout=timeout)
    if as_json:
        nodes = [status.to_dict() for status in cluster.status()]
        click.echo(json.dumps({"bootstrap": bootstrap, "nodes": nodes}))
    else:
        click.echo(bootstrap)
    if not foreground:
        return
    _progress(f"cluster in {cluster.data_dir}; Ctrl-C stops it")
    try:
        while all(status.running for status in cluster.status()):
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    _progress("stopping the cluster...")
    cluster.stop()


def _run_in_foreground(broker: LocalBroker) -> None:
    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    _progress(f"broker log: {broker.log_path}; Ctrl-C stops it")
    try:
        code = broker.wait()
    except KeyboardInterrupt:
        _progress("stopping the broker...")
        broker.stop()
        return
    raise BrokerError(f"the Kafka broker exited (exit code {code}); see {broker.log_path}")


@kafka.command()
@data_dir_option
@brokers_option
@json_option
def status(data_dir: Path | None, brokers: int, as_json: bool) -> None:
    """Report running/stopped, pid, bootstrap and Kafka version (exit 0 running, 3 stopped;
    a cluster: one line per node, exit 3 unless all run)."""
    cluster = _cluster(data_dir, brokers)
    statuses = cluster.status() if cluster is not None else [_broker(data_dir).status()]
    for current in statuses:
        _echo_status(current, as_json)
    if not all(current.running for current in statuses):
        sys.exit(EXIT_STOPPED)


@kafka.command()
@data_dir_option
@brokers_option
@click.option("--timeout", type=float, default=30.0, show_default=True, help="SIGKILL after.")
@_clean_errors
def stop(data_dir: Path | None, brokers: int, timeout: float) -> None:
    """Stop the broker or cluster (SIGTERM, then SIGKILL after the timeout)."""
    cluster = _cluster(data_dir, brokers)
    target = cluster if cluster is not None else _broker(data_dir)
    click.echo("stopped" if target.stop(timeout=timeout) else "not running")
