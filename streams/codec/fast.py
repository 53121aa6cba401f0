"""Hand-written Avro for the two hot records, ModelInput and Prediction.

fastavro interprets the schema for every datum and goes through a dict per record; for
the worker and the hook that is most of the per-message cost. These functions write and
read exactly the bytes fastavro does, straight from and into the dataclasses.

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

from streams.codec.fastread import SLOTS_MATCH, FastDecoder, decode_model_input, decode_prediction
from streams.codec.fastwrite import FastEncoder, model_input_encoder, prediction_encoder

__all__ = ["FastDecoder", "FastEncoder", "fast_codec_for", "schema_shape"]


def schema_shape(schema: Any) -> Any:
    """What decides the bytes of a (parsed) schema: types, field names and order, enum
    symbols, named-type names; docs, defaults and aliases dropped."""
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return ("union", *(schema_shape(s) for s in schema))
    kind = schema.get("type")
    if kind == "map":
        return ("map", schema_shape(schema["values"]))
    if kind == "enum":
        return ("enum", schema["name"], tuple(schema["symbols"]))
    if kind == "record":
        fields_ = tuple((f["name"], schema_shape(f["type"])) for f in schema["fields"])
        return ("record", schema["name"], fields_)
    # Logical types, arrays, fixed...: never part of a fast layout, so never equal.
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


_FAST: dict[str, tuple[Any, Callable[[bytes], FastEncoder], FastDecoder]] = {
    "dev.shadoweval.ModelInput": (MODEL_INPUT_SHAPE, model_input_encoder, decode_model_input),
    "dev.shadoweval.Prediction": (PREDICTION_SHAPE, prediction_encoder, decode_prediction),
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
    if found is None or not SLOTS_MATCH:
        return None
    shape, make_encoder, decoder = found
    if any(schema_shape(s) != shape for s in schemas):
        return None
    return make_encoder(header), decoder
