"""BACKWARD compatibility of Avro schemas: can the new schema read data written with the old?

Implements the Avro specification's schema-resolution rules on expanded schemas (every
named type inlined), reporting each incompatibility with the path where it occurs.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from streams.codec.catalogue import SchemaCatalogue

__all__ = ["backward_incompatibilities", "check_catalogue"]

Schema = Any
_PROMOTIONS = {
    "int": {"long", "float", "double"},
    "long": {"float", "double"},
    "float": {"double"},
    "string": {"bytes"},
    "bytes": {"string"},
}
_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def _type_of(schema: Schema) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        return str(schema["type"])
    return str(schema)


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def backward_incompatibilities(reader: Schema, writer: Schema, path: str = "") -> list[str]:
    """Why ``reader`` cannot read ``writer``'s data; an empty list means compatible.

    Examples
    --------
    >>> old = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]}
    >>> new = {"type": "record", "name": "R", "fields": [
    ...     {"name": "a", "type": "long"}, {"name": "b", "type": "string"}]}
    >>> backward_incompatibilities(new, old)
    ['R.b: field added without a default']
    """
    r_type, w_type = _type_of(reader), _type_of(writer)
    here = path or (_short(reader["name"]) if isinstance(reader, dict) and "name" in reader else "")
    if w_type == "union":
        problems: list[str] = []
        for branch in writer:
            problems += _readable_by_any(reader, branch, here)
        return problems
    if r_type == "union":
        return _readable_by_any(reader, writer, here)
    if r_type != w_type:
        if w_type in _PROMOTIONS and r_type in _PROMOTIONS[w_type]:
            return []
        return [f"{here}: {w_type} cannot be read as {r_type}"]
    if r_type == "record":
        return _record_problems(reader, writer, here)
    if r_type == "enum":
        missing = set(writer["symbols"]) - set(reader["symbols"])
        if missing and "default" not in reader:
            return [f"{here}: enum symbols {sorted(missing)} removed without a default"]
        return []
    if r_type == "array":
        return backward_incompatibilities(reader["items"], writer["items"], f"{here}[]")
    if r_type == "map":
        return backward_incompatibilities(reader["values"], writer["values"], f"{here}{{}}")
    if r_type == "fixed" and reader["size"] != writer["size"]:
        return [f"{here}: fixed size changed from {writer['size']} to {reader['size']}"]
    return []


def _readable_by_any(reader_union: Schema, writer: Schema, path: str) -> list[str]:
    branches = reader_union if isinstance(reader_union, list) else [reader_union]
    for branch in branches:
        if not backward_incompatibilities(branch, writer, path):
            return []
    return [f"{path}: writer type {_type_of(writer)} matches no reader union branch"]


def _record_problems(reader: Schema, writer: Schema, path: str) -> list[str]:
    if _short(reader["name"]) != _short(writer["name"]) and writer["name"] not in reader.get(
        "aliases", []
    ):
        return [f"{path}: record {writer['name']} renamed to {reader['name']} without an alias"]
    written = {field["name"]: field for field in writer["fields"]}
    problems: list[str] = []
    for field in reader["fields"]:
        names = [field["name"], *field.get("aliases", [])]
        source = next((written[n] for n in names if n in written), None)
        where = f"{path}.{field['name']}"
        if source is None:
            if "default" not in field:
                problems.append(f"{where}: field added without a default")
            continue
        problems += backward_incompatibilities(field["type"], source["type"], where)
    return problems


def check_catalogue(catalogue: SchemaCatalogue) -> dict[str, list[str]]:
    """Every schema version against its previous version: ``{"Name vN": [problems]}``."""
    report: dict[str, list[str]] = {}
    for name in catalogue.names():
        versions = catalogue.versions(name)
        for previous, current in pairwise(versions):
            label = f"{name} v{current.version} (id {current.id}) reading v{previous.version}"
            report[label] = backward_incompatibilities(current.expanded, previous.expanded)
    return report
