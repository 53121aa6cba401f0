"""``shadow-eval acls print``: the least ACLs of a component, as ``kafka-acls`` commands."""

from __future__ import annotations

import click

from streams.acls import ROLES, kafka_acls_commands, role_acls
from streams.cli.options import kafka_options, settings_from

__all__ = ["acls"]


@click.group()
def acls() -> None:
    """The Kafka ACLs each component needs (least privilege)."""


@acls.command("print")
@kafka_options
@click.option("--principal", required=True, help="e.g. User:shadow-worker (SASL user or cert CN).")
@click.option("--role", type=click.Choice(ROLES), required=True, help="The component.")
@click.option("--join-app-id", default="shadow-eval-join", show_default=True,
              help="The join's app_id ([join] app_id of the experiments file).")  # fmt: skip
@click.option("--command-config", default="admin.properties", show_default=True,
              help="The admin's client.properties, for the printed commands.")  # fmt: skip
def print_acls(
    bootstrap: str | None,
    topic_prefix: str | None,
    principal: str,
    role: str,
    join_app_id: str,
    command_config: str,
) -> None:
    """Print one `kafka-acls.sh --add` command per ACL the ROLE needs."""
    if ":" not in principal:
        raise click.BadParameter("a principal looks like User:NAME", param_hint="--principal")
    settings = settings_from(bootstrap, topic_prefix)
    for line in kafka_acls_commands(
        role_acls(settings, role, join_app_id=join_app_id),
        principal,
        bootstrap=settings.kafka_bootstrap,
        command_config=command_config,
    ):
        click.echo(line)
