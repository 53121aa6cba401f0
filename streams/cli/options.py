"""Options shared by several subcommands, and the one way a CLI error is shown."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import ValidationError

from streams.kafka.config import ClientConfigError, file_config
from streams.settings import Settings, load_settings

__all__ = ["kafka_options", "settings_from"]

F = TypeVar("F", bound=Callable[..., Any])


def _remember_config_file(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        ctx.meta["shadow_eval.kafka_config_file"] = value


def kafka_options(function: F) -> F:
    """``--bootstrap``, ``--topic-prefix`` and ``--kafka-config``, defaulting to the
    SHADOW_ environment."""
    function = click.option(
        "--kafka-config",
        type=click.Path(dir_okay=False, path_type=Path),
        expose_value=False,
        callback=_remember_config_file,
        help="A Java-style client.properties for every Kafka client "
        "[env SHADOW_KAFKA_CONFIG_FILE].",
    )(function)
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
    context = click.get_current_context(silent=True)
    if context is not None and "kafka_config_file" not in extra:
        extra["kafka_config_file"] = context.meta.get("shadow_eval.kafka_config_file")
    try:
        settings = load_settings(kafka_bootstrap=bootstrap, topic_prefix=topic_prefix, **extra)
        file_config(settings)  # an unknown key fails here, before any client starts
    except ValidationError as exc:
        problems = "; ".join(str(err["msg"]).removeprefix("Value error, ") for err in exc.errors())
        raise click.UsageError(f"bad setting: {problems}") from None
    except ClientConfigError as exc:
        raise click.UsageError(f"bad Kafka client setting: {exc}") from None
    return settings
