"""The join's byte layout is checked against the ``.avsc`` files at import: a schema change
that moves a field the join slices by stops it at start-up, naming the field."""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from streams.avro_bytes import text
from streams.join.layout import LAYOUT, LayoutError, check_layout
from streams.schema_files import find_schema_dir, latest_schemas

NS = "dev.shadoweval."


def _changed(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    schemas = copy.deepcopy(latest_schemas())
    change(schemas)
    return schemas


def _fields(schemas: dict[str, Any], name: str) -> list[dict[str, Any]]:
    fields: list[dict[str, Any]] = schemas[NS + name]["fields"]
    return fields


def _swap(name: str, a: int, b: int) -> Callable[[dict[str, Any]], None]:
    def change(schemas: dict[str, Any]) -> None:
        fields = _fields(schemas, name)
        fields[a], fields[b] = fields[b], fields[a]

    return change


def _retype(name: str, field: str, new_type: Any) -> Callable[[dict[str, Any]], None]:
    def change(schemas: dict[str, Any]) -> None:
        for f in _fields(schemas, name):
            if f["name"] == field:
                f["type"] = new_type

    return change


def _append(name: str) -> Callable[[dict[str, Any]], None]:
    def change(schemas: dict[str, Any]) -> None:
        _fields(schemas, name).append({"name": "extra", "type": "long", "default": 0})

    return change


def test_the_shipped_schemas_have_the_layout() -> None:
    assert check_layout(latest_schemas()) == LAYOUT


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_swap("Prediction", 0, 1), "Prediction: field 0 is model: string"),
        (_retype("Prediction", "segments", "string"), "needs a field segments: map<string>"),
        (_swap("JoinSlot", 3, 4), "JoinSlot: field 3 is candidates: map<bytes>"),
        (_retype("JoinSlot", "first_seen_ms", "int"), "JoinSlot: field 1 is first_seen_ms: int"),
        (_append("JoinSlot"), "JoinSlot: fields the join does not write: extra"),
        (_swap("JoinEvent", 5, 6), None),  # live and candidate: same type, names differ
        (_retype("JoinEvent", "label", ["null", "string"]), "JoinEvent: field 7 is label"),
        (_append("JoinEvent"), "JoinEvent: fields the join does not write: extra"),
    ],
)
def test_a_schema_change_that_moves_what_the_join_slices_fails(
    change: Callable[[dict[str, Any]], None], message: str | None
) -> None:
    with pytest.raises(LayoutError, match=message):
        check_layout(_changed(change))


def test_a_prediction_field_after_segments_is_kept_where_it_was() -> None:
    """Fields the join does not slice by may change; one after ``segments`` moves the
    point where the request's segments go back in, found by skipping what precedes it."""
    schemas = _changed(_append("Prediction"))
    layout = check_layout(schemas)
    assert not layout.segments_last
    middle = (
        text("v2") + b"\x02" + b"\x06" + b"\x00" + b"\x00" + bytes(8) + b"\x00" + bytes(6)
    )  # cost fields null
    assert layout.skip_middle(middle + b"\x2a", 0) == len(middle)


def test_importing_the_join_with_a_moved_field_fails_at_start_up(tmp_path: Path) -> None:
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    for source in find_schema_dir().iterdir():
        (schemas / source.name).write_bytes(source.read_bytes())
    slot = schemas / "join_slot.v2.avsc"
    slot.write_text(
        slot.read_text().replace(
            '"first_seen_ms", "type": "long"', '"first_seen_ms", "type": "int"'
        )
    )
    code = (
        "import pathlib, streams.schema_files as f;"
        f"f.find_schema_dir = lambda: pathlib.Path({str(schemas)!r});"
        "import streams.join.slots"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "LayoutError: dev.shadoweval.JoinSlot: field 1 is first_seen_ms: int" in result.stderr
