"""The local schema catalogue: every schema version in ``schemas/`` with its permanent id."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, cast

from fastavro import parse_schema

from streams.schema_files import find_schema_dir

__all__ = ["SchemaCatalogue", "SchemaEntry", "define_once", "find_schema_dir"]

_NAMED = ("record", "enum", "fixed")


def define_once(schema: Any, namespace: str = "", seen: set[str] | None = None) -> Any:
    """``schema`` with every named type defined at its first use only (in Avro's
    depth-first order); later uses refer to it by full name, as the Avro specification
    requires (fastavro's ``expand=True`` inlines every use: "redefined named type" for
    a strict parser and a Schema Registry).

    Examples
    --------
    >>> point = {"type": "record", "name": "a.P", "fields": [{"name": "x", "type": "int"}]}
    >>> line = {"type": "record", "name": "a.L",
    ...         "fields": [{"name": "p", "type": point}, {"name": "q", "type": point}]}
    >>> define_once(line)["fields"][1]["type"]
    'a.P'
    """
    seen = set() if seen is None else seen
    if isinstance(schema, list):
        return [define_once(branch, namespace, seen) for branch in schema]
    if not isinstance(schema, dict):
        return schema
    kind = schema.get("type")
    if kind in _NAMED:
        name = str(schema["name"])
        if "." not in name:
            space = schema.get("namespace", namespace)
            name = f"{space}.{name}" if space else name
        if name in seen:
            return name
        seen.add(name)
        namespace = name.rpartition(".")[0]
        out = dict(schema)
        if kind == "record":
            out["fields"] = [
                {**f, "type": define_once(f["type"], namespace, seen)} for f in schema["fields"]
            ]
        return out
    if kind == "array":
        return {**schema, "items": define_once(schema["items"], namespace, seen)}
    if kind == "map":
        return {**schema, "values": define_once(schema["values"], namespace, seen)}
    if isinstance(kind, (dict, list)):
        return {**schema, "type": define_once(kind, namespace, seen)}
    return schema


@dataclass(frozen=True, slots=True)
class SchemaEntry:
    """One version of one schema."""

    id: int
    name: str
    version: int
    file: str
    raw: dict[str, Any]
    """The schema as written in its file (may refer to other named schemas)."""
    expanded: dict[str, Any]
    """Self-contained schema (what a registry stores): each named type it uses defined
    once, at its first use, and referred to by full name after that."""
    parsed: dict[str, Any]
    """fastavro's parsed form, ready for the reader and writer."""


class SchemaCatalogue:
    """Every schema version listed in ``catalogue.json``, by id and by name.

    Examples
    --------
    >>> catalogue = SchemaCatalogue.default()
    >>> catalogue.latest("dev.shadoweval.ModelInput").id
    1
    """

    def __init__(self, schema_dir: Path) -> None:
        self.schema_dir = schema_dir
        listing = json.loads((schema_dir / "catalogue.json").read_text())
        self._by_id: dict[int, SchemaEntry] = {}
        self._versions: dict[str, list[SchemaEntry]] = {}
        named: dict[str, Any] = {}
        expanded_named: dict[str, Any] = {}
        for item in listing["schemas"]:
            raw = json.loads((schema_dir / item["file"]).read_text())
            full_name = f"{raw['namespace']}.{raw['name']}"
            if full_name != item["name"]:
                raise ValueError(
                    f"catalogue.json: {item['file']} defines {full_name}, listed as {item['name']}"
                )
            if item["id"] in self._by_id:
                raise ValueError(f"catalogue.json: schema id {item['id']} is used twice")
            # Each version parses against the named types known so far (a copy, so a
            # newer version of a name may redefine it); its own names are then kept
            # for the schemas listed after it.
            scratch, expanded_scratch = dict(named), dict(expanded_named)
            parsed = cast(dict[str, Any], parse_schema(raw, named_schemas=scratch))
            expanded = cast(
                dict[str, Any],
                define_once(parse_schema(raw, named_schemas=expanded_scratch, expand=True)),
            )
            named.update(scratch)
            expanded_named.update(expanded_scratch)
            entry = SchemaEntry(
                item["id"], full_name, item["version"], item["file"], raw, expanded, parsed
            )
            self._by_id[entry.id] = entry
            self._versions.setdefault(full_name, []).append(entry)
        for versions in self._versions.values():
            versions.sort(key=lambda e: e.version)

    @classmethod
    def default(cls) -> SchemaCatalogue:
        return _default_catalogue()

    def by_id(self, schema_id: int) -> SchemaEntry | None:
        return self._by_id.get(schema_id)

    def latest(self, name: str) -> SchemaEntry:
        try:
            return self._versions[name][-1]
        except KeyError:
            raise KeyError(f"no schema named {name!r} in {self.schema_dir}") from None

    def versions(self, name: str) -> list[SchemaEntry]:
        return list(self._versions[name])

    def names(self) -> list[str]:
        return list(self._versions)

    def entries(self) -> list[SchemaEntry]:
        return list(self._by_id.values())


@cache
def _default_catalogue() -> SchemaCatalogue:
    return SchemaCatalogue(find_schema_dir())
