"""``shadow-eval topics create|check``."""

from __future__ import annotations

import click

from streams.cli.options import kafka_options, settings_from
from streams.topics import TopicError, check_topics, create_topics

__all__ = ["topics"]


@click.group()
def topics() -> None:
    """Create and check shadow-eval's topics."""


@topics.command()
@kafka_options
@click.option("--partitions", type=int, default=None, help="Partitions per topic [6].")
def create(bootstrap: str | None, topic_prefix: str | None, partitions: int | None) -> None:
    """Create every missing topic, then check co-partitioning."""
    settings = settings_from(bootstrap, topic_prefix, partitions=partitions)
    try:
        created = create_topics(settings)
    except TopicError as exc:
        raise click.ClickException(str(exc)) from None
    for name in settings.topics.all:
        click.echo(f"{'created' if name in created else 'exists '}  {name}")


@topics.command()
@kafka_options
def check(bootstrap: str | None, topic_prefix: str | None) -> None:
    """Check that every topic exists and the per-request topics are co-partitioned."""
    settings = settings_from(bootstrap, topic_prefix)
    try:
        statuses = check_topics(settings)
    except TopicError as exc:
        raise click.ClickException(str(exc)) from None
    for status in statuses:
        click.echo(f"ok  {status.name}  partitions={status.partitions}")
