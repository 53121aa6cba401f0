"""Schemas are the source of truth: dataclasses mirror them; versions stay BACKWARD compatible."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import typing

import pytest

from streams.codec import SchemaCatalogue
from streams.codec.compat import backward_incompatibilities, check_catalogue
from streams.codec.convert import FROM_AVRO

CATALOGUE = SchemaCatalogue.default()

# Fields the codec stores columnar or as JSON text: schema field -> dataclass field.
RENAMED = {
    "dev.shadoweval.ModelInput": {
        "numeric_names": "numeric",
        "numeric_values": "numeric",
        "categorical_names": "categorical",
        "categorical_values": "categorical",
        "extra_json": "extra",
    }
}


def _avro_nullable(field_type: object) -> bool:
    return isinstance(field_type, list) and "null" in field_type


@pytest.mark.parametrize("name", CATALOGUE.names())
def test_dataclass_mirrors_schema_field_by_field(name: str) -> None:
    record_type, _ = FROM_AVRO[name]
    schema = CATALOGUE.latest(name).raw
    renamed = RENAMED.get(name, {})
    schema_fields = [renamed.get(f["name"], f["name"]) for f in schema["fields"]]
    expected = list(dict.fromkeys(schema_fields))
    fields = dataclasses.fields(record_type)
    assert sorted(f.name for f in fields) == sorted(expected)
    assert record_type.__dataclass_params__.frozen  # type: ignore[attr-defined]
    assert hasattr(record_type, "__slots__")
    hints = typing.get_type_hints(record_type)
    for avro_field in schema["fields"]:
        attribute = renamed.get(avro_field["name"], avro_field["name"])
        optional = type(None) in typing.get_args(hints[attribute])
        if attribute == avro_field["name"]:
            assert optional == _avro_nullable(avro_field["type"]), (name, attribute)


def test_every_schema_has_docs_and_a_unique_id() -> None:
    ids = [entry.id for entry in CATALOGUE.entries()]
    assert len(ids) == len(set(ids))
    for entry in CATALOGUE.entries():
        assert entry.raw.get("doc"), entry.name


def test_catalogue_versions_are_backward_compatible() -> None:
    assert all(not problems for problems in check_catalogue(CATALOGUE).values())


RECORD = {"type": "record", "name": "R", "namespace": "x"}


def _record(*fields: dict[str, object]) -> dict[str, object]:
    return {**RECORD, "fields": list(fields)}


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        (_record({"name": "a", "type": "int"}), _record({"name": "a", "type": "long"}), None),
        (
            _record({"name": "a", "type": "int"}),
            _record({"name": "a", "type": "int"}, {"name": "b", "type": "string"}),
            "R.b: field added without a default",
        ),
        (
            _record({"name": "a", "type": "int"}),
            _record({"name": "a", "type": "int"}, {"name": "b", "type": "string", "default": ""}),
            None,
        ),
        (
            _record({"name": "a", "type": "long"}),
            _record({"name": "a", "type": "int"}),
            "long cannot be read as int",
        ),
        (
            _record({"name": "a", "type": ["null", "string"]}),
            _record({"name": "a", "type": "string"}),
            "null matches no reader union branch",
        ),
        (
            _record({"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}}),
            _record({"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A"]}}),
            "enum symbols ['B'] removed",
        ),
        (
            _record({"name": "m", "type": {"type": "map", "values": "int"}}),
            _record({"name": "m", "type": {"type": "map", "values": "double"}}),
            None,
        ),
        (_record({"name": "a", "type": "int"}), _record(), None),
    ],
)
def test_backward_compatibility_rules(old: object, new: object, problem: str | None) -> None:
    problems = backward_incompatibilities(new, old)
    if problem is None:
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems


def test_schemas_check_command_passes() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "streams.cli", "schemas", "check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "11 schemas" in result.stdout


def test_catalogue_json_lists_every_schema_file() -> None:
    listed = {
        item["file"]
        for item in json.loads((CATALOGUE.schema_dir / "catalogue.json").read_text())["schemas"]
    }
    on_disk = {path.name for path in CATALOGUE.schema_dir.glob("*.avsc")}
    assert listed == on_disk
