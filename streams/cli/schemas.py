"""``shadow-eval schemas list|check``."""

from __future__ import annotations

import click

from streams.codec import SchemaCatalogue
from streams.codec.compat import check_catalogue

__all__ = ["schemas"]


@click.group()
def schemas() -> None:
    """Inspect the Avro schemas and check their compatibility."""


@schemas.command("list")
def list_schemas() -> None:
    """Every schema version with its wire-format id."""
    catalogue = SchemaCatalogue.default()
    for entry in catalogue.entries():
        click.echo(f"{entry.id:>4}  {entry.name} v{entry.version}  ({entry.file})")


@schemas.command()
def check() -> None:
    """Each schema version must read data written with its previous version (BACKWARD)."""
    catalogue = SchemaCatalogue.default()
    report = check_catalogue(catalogue)
    failed = False
    for label, problems in report.items():
        click.echo(f"{'ok  ' if not problems else 'FAIL'}  {label}")
        for problem in problems:
            click.echo(f"      {problem}")
        failed = failed or bool(problems)
    checked = len(report)
    click.echo(f"{len(catalogue.names())} schemas, {checked} version pairs checked")
    if failed:
        raise SystemExit(1)
