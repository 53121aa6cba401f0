"""The fast Avro readers of ModelInput, Prediction, GroundTruth, JoinEvent and
JoinEventBatch: fastavro's exact records. In Python, generated from the ``.avsc`` files
(:mod:`streams.codec.fastgen`; ModelInput's in :mod:`streams.codec.fastread_input`); in C
(``streams/codec/_cread.c``) where the schemas have the layout it implements.

Each decoder returns ``None`` instead of a record for anything it does not handle
exactly (a multi-byte union index, a negative-count map block, a varint past 64 bits,
bad UTF-8, a short or over-long buffer); the caller then runs fastavro, which reads it
or raises the proper :class:`~streams.codec.wire.CodecError`. See
:mod:`streams.codec.fast`.

Every record reader takes the buffer and the index its body starts at and returns the
record and the index after it, so the Prediction and ModelInput readers serve both a
whole message and the records nested in a JoinEvent.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from streams.avro_bytes import GiveUp
from streams.codec.catalogue import SchemaCatalogue
from streams.codec.convert import FEATURE_SEPARATOR
from streams.codec.fastgen import READERS
from streams.codec.fastread_input import MI_SET, names_of, read_model_input
from streams.codec.shapes import C_SHAPES, MODEL_INPUT_SHAPE, schema_shape
from streams.native import load_native
from streams.records import (
    GroundTruth,
    JoinEvent,
    JoinEventBatch,
    JoinKind,
    ModelInput,
    Prediction,
    Role,
)

__all__ = ["DECODERS", "NATIVE_DECODERS", "PYTHON_DECODERS", "FastDecoder", "current_shape"]

FastDecoder = Callable[[bytes], Any]

_HEADER_SIZE = 5  # magic byte + schema id, as streams.codec.wire frames every message
_MODEL_INPUT = "dev.shadoweval.ModelInput"

# What the readers raise on bytes they do not handle: a short buffer (IndexError,
# struct.error), bad UTF-8 or JSON (ValueError), too deeply nested JSON.
_GIVE_UP_ERRORS = (GiveUp, IndexError, ValueError, struct.error, RecursionError)


def current_shape(name: str) -> Any:
    """The layout of the newest version of schema ``name`` (what the readers follow)."""
    return schema_shape(SchemaCatalogue.default().latest(name).parsed)


def _guarded(read: Callable[[bytes, int], tuple[Any, int]]) -> FastDecoder:
    def decode(data: bytes) -> Any:
        try:
            record, end = read(data, _HEADER_SIZE)
        except _GIVE_UP_ERRORS:
            return None  # fastavro's path decodes it or raises the proper CodecError
        return record if end == len(data) else None  # a short slice, or bytes left over

    return decode


def _python_decoders() -> dict[str, FastDecoder]:
    """The generated readers, and ModelInput's where its class and schema still have the
    layout it reads (the records that nest a ModelInput need it too)."""
    decoders = {name: _guarded(read) for name, read in READERS.items()}
    if MI_SET and current_shape(_MODEL_INPUT) == MODEL_INPUT_SHAPE:
        decoders[_MODEL_INPUT] = _guarded(read_model_input)
    else:
        decoders.pop("dev.shadoweval.JoinEvent", None)
        decoders.pop("dev.shadoweval.JoinEventBatch", None)
    return decoders


PYTHON_DECODERS = _python_decoders()
"""Full record name -> decoder of a whole message (header included), in Python."""


def _descriptors(cls: type[Any]) -> tuple[Any, ...]:
    return tuple(getattr(cls, f.name) for f in fields(cls))


def _native_decoders() -> dict[str, FastDecoder]:
    """The C readers (:mod:`streams.codec._cread`), when every schema has the layout they
    implement and the Python readers run too; empty without them or when
    ``SHADOW_EVAL_PURE_PYTHON`` is set."""
    if set(PYTHON_DECODERS) != set(C_SHAPES) or any(
        current_shape(name) != shape for name, shape in C_SHAPES.items()
    ):
        return {}
    cread = load_native("streams.codec._cread")
    if cread is None:
        return {}
    cread.configure(
        prediction=(Prediction, _descriptors(Prediction)),
        ground_truth=(GroundTruth, _descriptors(GroundTruth)),
        join_event=(JoinEvent, _descriptors(JoinEvent)),
        join_event_batch=(JoinEventBatch, _descriptors(JoinEventBatch)),
        model_input=(ModelInput, _descriptors(ModelInput)),
        roles=(Role.LIVE, Role.SHADOW),
        kinds=(JoinKind.PAIRED, JoinKind.LABELLED, JoinKind.EXPIRED),
        names_of=names_of,
        json_loads=json.loads,
        separator=FEATURE_SEPARATOR,
        give_up_errors=_GIVE_UP_ERRORS,
    )
    return {
        _MODEL_INPUT: cread.decode_model_input,
        "dev.shadoweval.Prediction": cread.decode_prediction,
        "dev.shadoweval.GroundTruth": cread.decode_ground_truth,
        "dev.shadoweval.JoinEvent": cread.decode_join_event,
        "dev.shadoweval.JoinEventBatch": cread.decode_join_event_batch,
    }


NATIVE_DECODERS = _native_decoders()
"""The C readers in use (same records as the Python ones, a few times faster)."""
DECODERS = PYTHON_DECODERS | NATIVE_DECODERS
"""Full record name -> decoder of a whole message (header included);
:func:`streams.codec.fast.fast_codec_for` hands them out."""
