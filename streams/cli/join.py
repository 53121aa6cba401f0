"""``shadow-eval join --experiments FILE``: run one join worker (stage 1 and stage 2)."""

from __future__ import annotations

import gc
import logging
from pathlib import Path

import click

from streams.cli.options import kafka_options, settings_from
from streams.codec import RegistryError
from streams.settings import Settings

__all__ = ["join"]


@click.command()
@click.option(
    "--experiments",
    "experiments_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The experiments file (TOML).",
)
@kafka_options
@click.option("--partitions", type=int, default=None, help="Partitions of the topics [6].")
@click.option(
    "--store",
    default=None,
    help="State store URL: memory:// or rocksdb:// (rocksdb://?cache_mb=64&write_buffer_mb=32).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Local state directory [<cache>/join].",
)
@click.option(
    "--stage",
    type=click.Choice(["both", "pairs", "judge"]),
    default="both",
    show_default=True,
    help="Run stage 1 (pairs), stage 2 (judge) or both in this process. The stages are "
    "separate consumer groups: run them as separate processes to use two cores.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=20_000,
    show_default=True,
    help="Stage 1: records per Kafka transaction at most.",
)
@click.option(
    "--web-port",
    type=int,
    default=None,
    help="Serve the live experiment page (/) and /verdicts/ on this port.",
)
@click.option(
    "--web-host",
    default="127.0.0.1",
    show_default=True,
    help="Address the page binds to (0.0.0.0: every interface; it has no authentication).",
)
@click.option(
    "--hold-partitions-on-stop",
    is_flag=True,
    help="With a rocksdb:// store: on SIGTERM keep this process's stage-1 partitions for "
    "the group session timeout (10 s) instead of handing them over at once, so a restart "
    "on the same host and --data-dir gets them and their stores back without a rebalance.",
)
@click.option("--metrics-port", type=int, default=0, help="Prometheus port (0: off).")
@click.option("--metrics-addr", default="127.0.0.1", show_default=True,
              help="Address /metrics binds (0.0.0.0: every interface, e.g. in a pod).")  # fmt: skip
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default="WARNING",
    help="Log level (INFO shows assignments, restores and a status line every 30 s).",
)
def join(
    experiments_path: Path,
    bootstrap: str | None,
    topic_prefix: str | None,
    partitions: int | None,
    store: str | None,
    data_dir: Path | None,
    stage: str,
    batch_size: int,
    web_port: int | None,
    web_host: str,
    hold_partitions_on_stop: bool,
    metrics_port: int,
    metrics_addr: str,
    log_level: str,
) -> None:
    """Pair live, shadow and ground truth; test, alert and decide per experiment.

    Run several processes with the same settings to share the partitions.
    """
    from dataclasses import replace

    from streams.join.experiments import ConfigError, load
    from streams.join.store_options import StoreOptions
    from streams.topics import TopicError, check_topics, create_topics

    settings = settings_from(bootstrap, topic_prefix, partitions=partitions)
    try:
        experiments = load(experiments_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if store is not None:
        try:
            StoreOptions.parse(store)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--store") from None
        experiments = replace(experiments, join=replace(experiments.join, store=store))
    try:
        settings = _partitions_from_topics(settings)
        # The join's own topics are made on first start; the others are the user's.
        create_topics(settings, only=(settings.topics.join_events, settings.topics.join_state))
        statuses = check_topics(settings)
    except TopicError as exc:
        raise click.ClickException(str(exc)) from None
    counts = {s.partitions for s in statuses if s.name in settings.topics.per_request}
    if counts != {settings.partitions}:
        raise click.ClickException(
            f"the per-request topics have {counts.pop()} partitions but --partitions / "
            f"SHADOW_PARTITIONS is {settings.partitions}; they must match (leave both "
            "out: the join takes the count from the topics)"
        )
    from streams.join.engine import JoinWorker
    from streams.kafka.transaction import Fenced
    from streams.kafka.watchdog import Watchdog, restart_process

    logging.basicConfig(
        level=log_level.upper(), format="[%(asctime)s] %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("streams").setLevel(log_level.upper())
    if web_port is not None and stage == "pairs":
        raise click.BadParameter(
            "the live page is served by the judge stage (--stage judge or both)",
            param_hint="--web-port",
        )
    stages = ("pairs", "judge") if stage == "both" else (stage,)
    try:
        worker = JoinWorker(
            settings,
            experiments,
            stages=stages,
            data_dir=data_dir,
            batch_size=batch_size,
            watchdog=Watchdog(experiments.join.stall_limit_s, restart_process),
            leave_on_stop=not hold_partitions_on_stop,
        )
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr=metrics_addr, registry=worker.metrics.registry)
    if web_port is not None:
        from streams.web import LivePage, serve_page

        server = serve_page(LivePage.of(worker), web_port, web_host)
        click.echo(f"live experiment page: {server.url}", err=True)
    from streams.codec.fastread import NATIVE_DECODERS
    from streams.join.slot_state import NATIVE as NATIVE_SLOTS
    from streams.native import python_forced

    native = bool(NATIVE_DECODERS) and NATIVE_SLOTS
    log = logging.getLogger("streams")
    log.info(
        "join: %d experiments, stages %s, store %s, topics %s.*, %s code",
        len(experiments.experiments),
        "+".join(stages),
        experiments.join.store,
        settings.topic_prefix,
        "C" if native else "Python",
    )
    if not native and not python_forced():
        log.warning(
            "join: its C modules are not built (pip install needs a C compiler); the "
            "Python code gives the same results, several times slower"
        )
    _tune_gc()
    try:
        worker.run()
    except TopicError as exc:  # partitions added while running (streams/join/partition_watch)
        raise click.ClickException(str(exc)) from None
    except RegistryError as exc:
        raise click.ClickException(f"join stopped: {exc}") from None
    except Fenced:
        restart_process("join stage 1", "was fenced or lost its transaction coordinator")


def _partitions_from_topics(settings: Settings) -> Settings:
    """``settings`` with the per-request topics' partition count, unless one was given
    (``--partitions`` / ``SHADOW_PARTITIONS``: then it is only checked against them)."""
    from streams.topics import describe_topics

    if "partitions" in settings.model_fields_set:
        return settings
    names = settings.topics.per_request
    counts = {s.partitions for s in describe_topics(settings) if s.name in names and s.partitions}
    if len(counts) != 1:
        return settings  # missing or not co-partitioned: check_topics says which
    return settings.model_copy(update={"partitions": counts.pop()})


def _tune_gc() -> None:
    """Collect cyclic garbage far less often than CPython's default (every 700 net
    allocations), and never look at what start-up made again.

    A stage-1 batch keeps ~20,000 request states alive, so the default collects the
    youngest generation every few dozen records and, every 100 of those, walks the
    judge's sample windows. The join makes few reference cycles; ~10-15% more records/s
    (``bench/join.py``).
    """
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
