"""Options shared by several subcommands, and the one way a CLI error is shown."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click
from pydantic import ValidationError

from streams.settings import Settings, load_settings

__all__ = ["kafka_options", "settings_from"]

F = TypeVar("F", bound=Callable[..., Any])


def kafka_options(function: F) -> F:
    """``--bootstrap`` and ``--topic-prefix``, defaulting to the SHADOW_ environment."""
    function = click.option(
        "--topic-prefix", default=None, help="Topic prefix [env SHADOW_TOPIC_PREFIX, 'shadow']."
    )(function)
    function = click.option(
        "--bootstrap",
        default=None,
        help="Kafka bootstrap servers [env SHADOW_KAFKA_BOOTSTRAP, 127.0.0.1:9092].",
    )(function)
    return function


def settings_from(bootstrap: str | None, topic_prefix: str | None, **extra: Any) -> Settings:
    """Settings from the environment and CLI options; a bad value is a clean CLI error."""
    try:
        return load_settings(kafka_bootstrap=bootstrap, topic_prefix=topic_prefix, **extra)
    except ValidationError as exc:
        problems = "; ".join(str(err["msg"]) for err in exc.errors())
        raise click.UsageError(f"bad setting: {problems}") from None
