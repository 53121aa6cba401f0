"""The expanded schemas (what a registry stores) are valid Avro for a strict parser."""

from __future__ import annotations

import json
from typing import Any

import avro.schema
import pytest
from fastavro import parse_schema

from streams.codec.catalogue import SchemaCatalogue, SchemaEntry, define_once

ENTRIES = SchemaCatalogue.default().entries()


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: f"{e.id}-{e.name}")
def test_apache_avro_parses_every_expanded_schema(entry: SchemaEntry) -> None:
    parsed = avro.schema.parse(json.dumps(entry.expanded))  # raises on a redefined name
    assert parsed.fullname == entry.name


def _definitions(schema: Any) -> list[str]:
    """Every named type defined in ``schema`` (names as written), in order."""
    if isinstance(schema, list):
        return [name for branch in schema for name in _definitions(branch)]
    if not isinstance(schema, dict):
        return []
    found = [schema["name"]] if schema.get("type") in ("record", "enum", "fixed") else []
    for key in ("type", "items", "values"):
        found += _definitions(schema.get(key)) if key != "type" or not found else []
    for field in schema.get("fields", []):
        found += _definitions(field["type"])
    return found


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: f"{e.id}-{e.name}")
def test_expanded_schemas_define_each_named_type_once(entry: SchemaEntry) -> None:
    names = _definitions(entry.expanded)
    assert len(names) == len(set(names)), names


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: f"{e.id}-{e.name}")
def test_expanded_schemas_read_what_the_catalogue_writes(entry: SchemaEntry) -> None:
    # The same parsed form as the catalogue's own (named types resolved).
    assert parse_schema(entry.expanded)["name"] == entry.parsed["name"]


def test_define_once_keeps_the_first_definition_and_refers_after() -> None:
    enum = {"type": "enum", "name": "E", "namespace": "n", "symbols": ["A"]}
    record = {
        "type": "record",
        "name": "R",
        "namespace": "n",
        "fields": [
            {"name": "a", "type": ["null", enum]},
            {"name": "b", "type": {"type": "array", "items": enum}},
            {"name": "c", "type": {"type": "map", "values": enum}},
        ],
    }
    out = define_once(record)
    assert out["fields"][0]["type"] == ["null", enum]
    assert out["fields"][1]["type"]["items"] == "n.E"
    assert out["fields"][2]["type"]["values"] == "n.E"
    avro.schema.parse(json.dumps(out))
