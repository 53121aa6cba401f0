"""The layout of a schema (what decides its bytes), and the layouts the hand-written C
readers (``streams/codec/_cread.c``) and the ModelInput reader and writer implement.

A hand-written path runs only where the current schema has exactly its layout; the
generated paths (:mod:`streams.codec.fastgen`) follow the ``.avsc`` files by construction.
"""

from __future__ import annotations

from typing import Any

__all__ = ["C_SHAPES", "MODEL_INPUT_SHAPE", "schema_shape"]


_PRIMITIVES = frozenset(("null", "boolean", "int", "long", "float", "double", "bytes", "string"))


def schema_shape(schema: Any, named: dict[str, Any] | None = None) -> Any:
    """What decides the bytes of a (parsed) schema: types, field names and order, enum
    symbols, named-type names; docs, defaults and aliases dropped.

    A reference to a named type (``"dev.shadoweval.Prediction"`` in a parsed JoinEvent)
    counts as that type's shape, so a changed Prediction changes the JoinEvent's too.
    Names resolve against ``named`` (by default the schema's ``__named_schemas``, as
    fastavro's ``parse_schema`` records them) and the types defined before them inline.
    """
    if named is None:
        found = schema.get("__named_schemas") if isinstance(schema, dict) else None
        named = found if isinstance(found, dict) else {}
    return _shape(schema, dict(named), frozenset())


def _shape(schema: Any, named: dict[str, Any], outer: frozenset[str]) -> Any:
    """``named`` grows by the types defined inline; ``outer`` holds the named types
    being expanded, so a recursive reference ends as a ref."""
    if isinstance(schema, str):
        if schema in _PRIMITIVES:
            return schema
        if schema in outer or schema not in named:
            return ("ref", schema)  # recursive or unknown: never part of a fast layout
        return _shape(named[schema], named, outer)
    if isinstance(schema, list):
        return ("union", *(_shape(s, named, outer) for s in schema))
    kind = schema.get("type")
    if kind == "map":
        return ("map", _shape(schema["values"], named, outer))
    if kind == "enum":
        named.setdefault(schema["name"], schema)
        return ("enum", schema["name"], tuple(schema["symbols"]))
    if kind == "record":
        name = schema["name"]
        named.setdefault(name, schema)
        inner = outer | {name}
        fields_ = tuple((f["name"], _shape(f["type"], named, inner)) for f in schema["fields"])
        return ("record", name, fields_)
    if kind == "array":
        return ("array", _shape(schema["items"], named, outer))
    # Logical types, fixed...: never part of a fast layout, so never equal.
    return ("other", repr(sorted(schema.items(), key=str)))


_STR_MAP = ("map", "string")
_OPT_STR = ("union", "null", "string")
_OPT_DOUBLE = ("union", "null", "double")
MODEL_INPUT_SHAPE = (
    "record",
    "dev.shadoweval.ModelInput",
    (
        ("request_id", "string"),
        ("model", "string"),
        ("timestamp_ms", "long"),
        ("numeric_names", "string"),
        ("numeric_values", "bytes"),
        ("categorical_names", "string"),
        ("categorical_values", "string"),
        ("segments", _STR_MAP),
        ("extra_json", _OPT_STR),
    ),
)
PREDICTION_SHAPE = (
    "record",
    "dev.shadoweval.Prediction",
    (
        ("request_id", "string"),
        ("model", "string"),
        ("version", "string"),
        ("role", ("enum", "dev.shadoweval.Role", ("LIVE", "SHADOW"))),
        ("timestamp_ms", "long"),
        ("value", ("union", "null", "double", "string")),
        ("probabilities", ("union", "null", ("map", "double"))),
        ("latency_ms", "double"),
        ("error", _OPT_STR),
        ("cpu_ms", _OPT_DOUBLE),
        ("worker", _OPT_STR),
        ("worker_rss_mb", _OPT_DOUBLE),
        ("worker_peak_mb", _OPT_DOUBLE),
        ("load_s", _OPT_DOUBLE),
        ("model_mb", _OPT_DOUBLE),
        ("segments", _STR_MAP),
    ),
)


GROUND_TRUTH_SHAPE = (
    "record",
    "dev.shadoweval.GroundTruth",
    (
        ("request_id", "string"),
        ("model", "string"),
        ("timestamp_ms", "long"),
        ("value", ("union", "double", "string")),
    ),
)
JOIN_EVENT_SHAPE = (
    "record",
    "dev.shadoweval.JoinEvent",
    (
        ("kind", ("enum", "dev.shadoweval.JoinKind", ("PAIRED", "LABELLED", "EXPIRED"))),
        ("experiment", "string"),
        ("request_id", "string"),
        ("timestamp_ms", "long"),
        ("segments", _STR_MAP),
        ("live", ("union", "null", PREDICTION_SHAPE)),
        ("candidate", ("union", "null", PREDICTION_SHAPE)),
        ("label", ("union", "null", "double", "string")),
        ("reason", _OPT_STR),
        ("inputs", ("union", "null", MODEL_INPUT_SHAPE)),
    ),
)


JOIN_EVENT_BATCH_SHAPE = (
    "record",
    "dev.shadoweval.JoinEventBatch",
    (("events", ("array", JOIN_EVENT_SHAPE)),),
)


C_SHAPES: dict[str, Any] = {
    "dev.shadoweval.ModelInput": MODEL_INPUT_SHAPE,
    "dev.shadoweval.Prediction": PREDICTION_SHAPE,
    "dev.shadoweval.GroundTruth": GROUND_TRUTH_SHAPE,
    "dev.shadoweval.JoinEvent": JOIN_EVENT_SHAPE,
    "dev.shadoweval.JoinEventBatch": JOIN_EVENT_BATCH_SHAPE,
}
"""Full name -> the layout the C reader of that record implements."""
