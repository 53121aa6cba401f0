"""Hand-written Avro for the hot records: ModelInput, Prediction, GroundTruth, JoinEvent
(and JoinEventBatch).

fastavro interprets the schema for every datum and goes through a dict per record; for
the worker, the hook and the join that is most of the per-message cost. These functions
write and read exactly the bytes fastavro does, straight from and into the dataclasses.

They are safe by construction rather than by care:

* :func:`fast_codec_for` hands them out only for a schema whose layout is exactly the
  one they were written for (a changed ``.avsc`` silently switches back to fastavro);
* they give up (return ``None``) on anything unusual - a value of an unexpected type, a
  multi-block or negative-count map, a varint of more than 64 bits, bad UTF-8, a short
  buffer - and the :class:`~streams.codec.wire.Codec` then runs the fastavro path, which
  encodes, decodes or raises exactly as it always did.

Writers live in :mod:`streams.codec.fastwrite`, readers in :mod:`streams.codec.fastread`;
``tests/unit/codec/test_fast.py`` checks byte-for-byte equality with fastavro.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streams.codec.fastread import DECODERS, FastDecoder
from streams.codec.fastwrite import ENCODERS, FastEncoder

__all__ = ["FastDecoder", "FastEncoder", "fast_codec_for", "schema_shape"]


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


_SHAPES: dict[str, Any] = {
    "dev.shadoweval.ModelInput": MODEL_INPUT_SHAPE,
    "dev.shadoweval.Prediction": PREDICTION_SHAPE,
    "dev.shadoweval.GroundTruth": GROUND_TRUTH_SHAPE,
    "dev.shadoweval.JoinEvent": JOIN_EVENT_SHAPE,
    "dev.shadoweval.JoinEventBatch": JOIN_EVENT_BATCH_SHAPE,
}
# Full name -> (layout, encoder factory, decoder): the records whose classes still have
# the fields the decoders fill (see streams.codec.fastread).
_FAST: dict[str, tuple[Any, Callable[[bytes], FastEncoder], FastDecoder]] = {
    name: (shape, ENCODERS[name], DECODERS[name])
    for name, shape in _SHAPES.items()
    if name in DECODERS
}


def fast_codec_for(
    name: str, header: bytes, *schemas: dict[str, Any]
) -> tuple[FastEncoder, FastDecoder] | None:
    """The hand-written encoder (framing with ``header``) and decoder of record ``name``,
    when every one of ``schemas`` (writer, and reader if resolving) has the exact layout
    they implement and the record classes still have the fields they fill; ``None``
    otherwise.

    Examples
    --------
    >>> from streams.codec import SchemaCatalogue
    >>> parsed = SchemaCatalogue.default().latest("dev.shadoweval.Prediction").parsed
    >>> encode, decode = fast_codec_for("dev.shadoweval.Prediction", bytes(5), parsed)
    >>> from streams.records import Prediction, Role
    >>> decode(encode(Prediction("r1", "churn", "v2", Role.SHADOW, 0, value=1.5))).value
    1.5
    """
    found = _FAST.get(name)
    if found is None:
        return None
    shape, make_encoder, decoder = found
    if any(schema_shape(s) != shape for s in schemas):
        return None
    return make_encoder(header), decoder
