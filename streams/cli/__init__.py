"""The one command line, ``shadow-eval``; each subcommand lives in its own module."""

from __future__ import annotations

import importlib
import logging

import click

__all__ = ["main"]

# name -> "module:attribute"; imported lazily so `shadow-eval --help` stays fast and a
# broken optional dependency only breaks its own subcommand.
SUBCOMMANDS: dict[str, str] = {
    "acls": "streams.cli.acls:acls",
    "actions": "streams.cli.actions:actions",
    "alerts": "streams.cli.alerts:alerts",
    "demo": "streams.cli.demo:demo",
    "ingest": "streams.cli.ingest:ingest",
    "join": "streams.cli.join:join",
    "kafka": "streams.cli.kafka:kafka",
    "topics": "streams.cli.topics:topics",
    "replay": "streams.cli.replay:replay",
    "schemas": "streams.cli.schemas:schemas",
    "status": "streams.cli.status:status",
    "worker": "streams.cli.worker:worker",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        command: click.Command = getattr(importlib.import_module(module_name), attribute)
        return command


@click.group(cls=LazyGroup)
@click.option("-v", "--verbose", is_flag=True, help="Log at DEBUG level.")
@click.version_option(package_name="shadow-eval")
def main(verbose: bool) -> None:
    """shadow-eval: try new models on production traffic without touching a user."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
