"""Where join stage 1 finds fields in the bytes it slices, checked against the ``.avsc``
files at import.

Stage 1 never decodes what it stores: it keeps a prediction's bytes minus the fields the
request already holds, packs its state as a JoinSlot body and writes join events by
concatenation (:mod:`streams.join.slot_state`, :mod:`streams.join.slot_events`). Those
byte positions are assumptions about the schemas. :func:`check_layout` states them
against the schemas as written, so a schema change that moves a field stops the join at
start-up with a :class:`LayoutError` naming it, instead of writing wrong bytes.

What may change without touching the join: any Prediction field after ``model`` except
``segments`` (added, removed, reordered, retyped): a stored prediction is whatever lies
between ``model`` and ``segments`` plus whatever follows ``segments``.

Examples
--------
>>> check_layout(latest_schemas()) == LAYOUT
True
>>> import copy
>>> schemas = copy.deepcopy(latest_schemas())
>>> fields = schemas["dev.shadoweval.Prediction"]["fields"]
>>> fields[0], fields[1] = fields[1], fields[0]
>>> try:
...     check_layout(schemas)
... except LayoutError as exc:
...     print(exc)
dev.shadoweval.Prediction: field 0 is model: string, the join needs request_id: string
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.avro_bytes import Skip, skipper
from streams.schema_files import latest_schemas

__all__ = ["LAYOUT", "JoinLayout", "LayoutError", "check_layout", "v1_suffix"]

_NS = "dev.shadoweval."
_STRING_MAP = ("map", "string")
_JOIN_SLOT = (
    ("model", "string"),
    ("first_seen_ms", "long"),
    ("segments", "bytes"),
    ("live", ("null", "bytes")),
    ("candidates", ("map", "bytes")),
    ("inputs", ("null", "bytes")),
    ("label", ("null", "bytes")),
    ("closed", ("array", "string")),
    ("labelled", ("array", "string")),
)
"""JoinSlot as Slot.pack writes it (and _cslots.c's pack)."""
_JOIN_EVENT = (
    ("kind", ("enum", "JoinKind", ("PAIRED", "LABELLED", "EXPIRED"))),
    ("experiment", "string"),
    ("request_id", "string"),
    ("timestamp_ms", "long"),
    ("segments", _STRING_MAP),
    ("live", ("null", _NS + "Prediction")),
    ("candidate", ("null", _NS + "Prediction")),
    ("label", ("null", "double", "string")),
    ("reason", ("null", "string")),
    ("inputs", ("null", _NS + "ModelInput")),
)
"""JoinEvent as join_event writes it: stored label union bytes, reason, inputs body."""
_JOIN_EVENT_BATCH = (("events", ("array", _NS + "JoinEvent")),)
_PREDICTION_HEAD = (("request_id", "string"), ("model", "string"))
"""A stored prediction leaves these out (they are the request's), then segments."""


class LayoutError(Exception):
    """A schema no longer has the layout join stage 1 slices its bytes by."""


@dataclass(frozen=True, slots=True)
class JoinLayout:
    """The Prediction layout the join stores (what the schemas allow to vary)."""

    middle: tuple[str, ...]
    """The Prediction fields between ``model`` and ``segments``."""
    segments_last: bool
    """Whether ``segments`` ends a Prediction: a stored prediction is then the bytes
    between ``model`` and ``segments`` (the common, faster case)."""
    skip_middle: Skip = field(compare=False)
    """The index after the fields between ``model`` and ``segments``, from where they
    start (to find where ``segments`` goes back in when it is not last)."""


def _shape(schema: Any) -> Any:
    """A field type as the join compares it: names, element types, enum symbols."""
    if isinstance(schema, list):
        return tuple(_shape(s) for s in schema)
    if isinstance(schema, dict):
        kind = schema["type"]
        if kind == "map":
            return ("map", _shape(schema["values"]))
        if kind == "array":
            return ("array", _shape(schema["items"]))
        if kind == "enum":
            return ("enum", schema["name"], tuple(schema["symbols"]))
        if kind == "record":
            return ("record", schema["name"])
        return _shape(kind) if isinstance(kind, str) and len(schema) == 1 else schema
    return schema


def _describe(shape: Any) -> str:
    if isinstance(shape, tuple) and shape and shape[0] in ("map", "array"):
        return f"{shape[0]}<{_describe(shape[1])}>"
    if isinstance(shape, tuple) and shape and shape[0] == "enum":
        return f"enum {shape[1]} {list(shape[2])}"
    if isinstance(shape, tuple):
        return "[" + ", ".join(_describe(s) for s in shape) + "]"
    return str(shape)


def _fields(schemas: Mapping[str, Any], name: str) -> list[tuple[str, Any]]:
    if _NS + name not in schemas:
        raise LayoutError(f"no schema {_NS + name}")
    return [(f["name"], _shape(f["type"])) for f in schemas[_NS + name]["fields"]]


def _expect(name: str, found: list[tuple[str, Any]], expected: tuple[tuple[str, Any], ...]) -> None:
    for index, want in enumerate(expected):
        got = found[index] if index < len(found) else None
        if got != want:
            shown = "missing" if got is None else f"{got[0]}: {_describe(got[1])}"
            raise LayoutError(
                f"{_NS}{name}: field {index} is {shown}, "
                f"the join needs {want[0]}: {_describe(want[1])}"
            )


def check_layout(schemas: Mapping[str, Any]) -> JoinLayout:
    """The join's layout of ``schemas`` (full name -> schema as written); raises
    :class:`LayoutError` where they differ from what the join's bytes assume."""
    for name, expected in (
        ("JoinSlot", _JOIN_SLOT),
        ("JoinEvent", _JOIN_EVENT),
        ("JoinEventBatch", _JOIN_EVENT_BATCH),
    ):
        found = _fields(schemas, name)
        _expect(name, found, expected)
        if len(found) != len(expected):
            extra = ", ".join(f for f, _ in found[len(expected) :])
            raise LayoutError(f"{_NS}{name}: fields the join does not write: {extra}")
    prediction = _fields(schemas, "Prediction")
    _expect("Prediction", prediction, _PREDICTION_HEAD)
    names = [f for f, _ in prediction]
    if "segments" not in names or prediction[names.index("segments")][1] != _STRING_MAP:
        raise LayoutError(f"{_NS}Prediction: the join needs a field segments: map<string>")
    at = names.index("segments")
    raw = schemas[_NS + "Prediction"]["fields"]
    middle = {"type": "record", "name": "_Middle", "fields": raw[2:at]}
    return JoinLayout(tuple(names[2:at]), at == len(names) - 1, skipper(middle, schemas))


_V1_MIDDLE = ("version", "role", "timestamp_ms", "value", "probabilities", "latency_ms", "error")
"""The stored prediction of a JoinSlot version 1 state (Prediction version 1's middle)."""


def v1_suffix(schemas: Mapping[str, Any], layout: JoinLayout) -> bytes | None:
    """What turns a stored version 1 prediction into the current one: the bytes of the
    null defaults of the fields added after ``error``; ``None`` when that is not how
    the schemas moved (the state of a version 1 slot is then not restored)."""
    if not layout.segments_last or layout.middle[: len(_V1_MIDDLE)] != _V1_MIDDLE:
        return None
    added = schemas[_NS + "Prediction"]["fields"][2 + len(_V1_MIDDLE) : 2 + len(layout.middle)]
    if not all(
        isinstance(f["type"], list) and f["type"][0] == "null" and f.get("default", 0) is None
        for f in added
    ):
        return None
    return b"\x00" * len(added)  # union branch 0, null: one byte each


LAYOUT = check_layout(latest_schemas())
"""The layout of the schemas in ``schemas/``; importing the join fails if they moved."""
