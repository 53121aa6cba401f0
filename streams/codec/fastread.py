"""Hand-written Avro readers of ModelInput, Prediction, GroundTruth, JoinEvent and
JoinEventBatch: fastavro's exact records.

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
from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import Any

from streams.avro_bytes import (
    HIGH_BITS,
    SHORT_LEN,
    GiveUp,
    read_double_map,
    read_long,
    read_size,
    read_string_map,
    read_text,
    unpack_double,
)
from streams.codec.convert import FEATURE_SEPARATOR
from streams.codec.fastread_input import (
    MI_SET,
    NO_SEGMENTS,
    names_of,
    read_model_input,
    slot_setters,
)
from streams.native import python_forced
from streams.records import (
    GroundTruth,
    JoinEvent,
    JoinEventBatch,
    JoinKind,
    ModelInput,
    Prediction,
    Role,
)

__all__ = ["DECODERS", "FastDecoder"]

FastDecoder = Callable[[bytes], Any]

_HEADER_SIZE = 5  # magic byte + schema id, as streams.codec.wire frames every message

_SEP = FEATURE_SEPARATOR


# Records are built by setting their slots directly (see slot_setters), when the classes
# still have exactly these fields.
_P_SET = slot_setters(
    Prediction,
    (
        "request_id",
        "model",
        "version",
        "role",
        "timestamp_ms",
        "value",
        "probabilities",
        "latency_ms",
        "error",
        "segments",
    ),
)
_GT_SET = slot_setters(GroundTruth, ("request_id", "model", "timestamp_ms", "value"))
_JE_SET = slot_setters(
    JoinEvent,
    (
        "kind",
        "experiment",
        "request_id",
        "timestamp_ms",
        "live",
        "candidate",
        "segments",
        "label",
        "reason",
        "inputs",
    ),
)
_JEB_SET = slot_setters(JoinEventBatch, ("events",))
_new = object.__new__


# What the readers raise on bytes they do not handle: a short buffer (IndexError,
# struct.error), bad UTF-8 or JSON (ValueError), too deeply nested JSON.
_GIVE_UP_ERRORS = (GiveUp, IndexError, ValueError, struct.error, RecursionError)


_ROLES = (Role.LIVE, Role.SHADOW)


def _read_prediction(
    data: bytes, i: int, seg_raw: bytes = b"", seg: Mapping[str, str] = NO_SEGMENTS
) -> tuple[Prediction, int]:
    """The Prediction body at ``i``; ``seg_raw`` and ``seg`` as in
    :func:`read_model_input`."""
    short = SHORT_LEN
    n = short[data[i]]
    if n < 0:
        n, i = read_size(data, i)
    else:
        i += 1
    request_id = data[i : i + n].decode()
    i += n
    n = short[data[i]]
    if n < 0:
        n, i = read_size(data, i)
    else:
        i += 1
    model = data[i : i + n].decode()
    i += n
    n = short[data[i]]
    if n < 0:
        n, i = read_size(data, i)
    else:
        i += 1
    version = data[i : i + n].decode()
    i += n
    role_index = data[i]
    if role_index > 2 or role_index & 1:
        raise GiveUp
    role = _ROLES[role_index >> 1]
    ts, i = read_long(data, i + 1)
    branch = data[i]
    i += 1
    value: float | str | None
    if branch == 0:
        value = None
    elif branch == 2:
        (value,) = unpack_double(data, i)
        i += 8
    elif branch == 4:
        value, i = read_text(data, i)
    else:
        raise GiveUp
    branch = data[i]
    i += 1
    probabilities: dict[str, float] | None = None
    if branch == 2:
        probabilities, i = read_double_map(data, i)
    elif branch != 0:
        raise GiveUp
    (latency,) = unpack_double(data, i)
    branch = data[i + 8]
    if branch == 0:
        error, i = None, i + 9
    elif branch == 2:
        error, i = read_text(data, i + 9)
    else:
        raise GiveUp
    segments: dict[str, str]
    if data[i] == 0:
        segments = {}
        i += 1
    elif seg_raw and data.startswith(seg_raw, i):
        segments = dict(seg)
        i += len(seg_raw)
    else:
        segments, i = read_string_map(data, i)
    record: Prediction = _new(Prediction)
    s0, s1, s2, s3, s4, s5, s6, s7, s8, s9 = _P_SET
    s0(record, request_id)
    s1(record, model)
    s2(record, version)
    s3(record, role)
    s4(record, ts)
    s5(record, value)
    s6(record, probabilities)
    s7(record, latency)
    s8(record, error)
    s9(record, segments)
    return record, i


def _decode_ground_truth(data: bytes) -> GroundTruth | None:
    """A whole GroundTruth message, or ``None``.

    GroundTruth is never nested, so its reader is the guarded decoder itself, with the
    timestamp and label reads inlined: each call saved is a tenth of its time.
    """
    short = SHORT_LEN
    try:
        n = short[data[5]]  # the body starts after the 5-byte header
        i = 6
        if n < 0:
            n, i = read_size(data, 5)
        request_id = data[i : i + n].decode()
        i += n
        n = short[data[i]]
        if n < 0:
            n, i = read_size(data, i)
        else:
            i += 1
        model = data[i : i + n].decode()
        i += n
        b0, b1 = data[i], data[i + 1]  # a label follows: byte i + 1 exists
        high = HIGH_BITS.get(data[i + 2 : i + 6]) if b0 > 0x7F and b1 > 0x7F else None
        if high is None:
            ts, i = read_long(data, i)
        else:
            n = high | (b0 & 0x7F) | (b1 & 0x7F) << 7
            ts = (n >> 1) ^ -(n & 1)
            i += 6
        branch = data[i]  # ["double", "string"]
        value: float | str
        if branch == 2:  # class labels are the common case
            n = short[data[i + 1]]
            if n < 0:
                n, i = read_size(data, i + 1)
            else:
                i += 2
            value = data[i : i + n].decode()
            i += n
        elif branch == 0:
            (value,) = unpack_double(data, i + 1)
            i += 9
        else:
            return None
    except _GIVE_UP_ERRORS:
        return None  # fastavro's path decodes it or raises the proper CodecError
    if i != len(data):
        return None
    record: GroundTruth = _new(GroundTruth)
    s0, s1, s2, s3 = _GT_SET
    s0(record, request_id)
    s1(record, model)
    s2(record, ts)
    s3(record, value)
    return record


_KINDS = (JoinKind.PAIRED, JoinKind.LABELLED, JoinKind.EXPIRED)


def _read_join_event(data: bytes, i: int) -> tuple[JoinEvent, int]:
    short = SHORT_LEN
    kind_index = data[i]
    if kind_index > 4 or kind_index & 1:
        raise GiveUp
    kind = _KINDS[kind_index >> 1]
    n = short[data[i + 1]]
    if n < 0:
        n, i = read_size(data, i + 1)
    else:
        i += 2
    experiment = data[i : i + n].decode()
    i += n
    n = short[data[i]]
    if n < 0:
        n, i = read_size(data, i)
    else:
        i += 1
    request_id = data[i : i + n].decode()
    ts, i = read_long(data, i + n)
    # The nested records nearly always carry the request's segments again, byte for
    # byte: their readers get these bytes and copy the map instead of decoding it.
    segments: dict[str, str]
    seg_raw = b""
    if data[i] == 0:
        segments = {}
        i += 1
    else:
        start = i
        segments, i = read_string_map(data, i)
        seg_raw = data[start:i]
    branch = data[i]
    live: Prediction | None = None
    if branch == 2:
        live, i = _read_prediction(data, i + 1, seg_raw, segments)
    elif branch == 0:
        i += 1
    else:
        raise GiveUp
    branch = data[i]
    candidate: Prediction | None = None
    if branch == 2:
        candidate, i = _read_prediction(data, i + 1, seg_raw, segments)
    elif branch == 0:
        i += 1
    else:
        raise GiveUp
    branch = data[i]  # ["null", "double", "string"]
    label: float | str | None = None
    if branch == 0:
        i += 1
    elif branch == 2:
        (label,) = unpack_double(data, i + 1)
        i += 9
    elif branch == 4:
        label, i = read_text(data, i + 1)
    else:
        raise GiveUp
    branch = data[i]
    reason: str | None = None
    if branch == 0:
        i += 1
    elif branch == 2:
        reason, i = read_text(data, i + 1)
    else:
        raise GiveUp
    branch = data[i]
    inputs: ModelInput | None = None
    if branch == 0:
        i += 1
    elif branch == 2:
        inputs, i = read_model_input(data, i + 1, seg_raw, segments)
    else:
        raise GiveUp
    record: JoinEvent = _new(JoinEvent)
    s0, s1, s2, s3, s4, s5, s6, s7, s8, s9 = _JE_SET
    s0(record, kind)
    s1(record, experiment)
    s2(record, request_id)
    s3(record, ts)
    s4(record, live)
    s5(record, candidate)
    s6(record, segments)
    s7(record, label)
    s8(record, reason)
    s9(record, inputs)
    return record, i


def _read_join_event_batch(data: bytes, i: int) -> tuple[JoinEventBatch, int]:
    events: list[JoinEvent] = []
    while True:  # blocks, up to the 0 end marker (a count per block, not per field)
        count, i = read_size(data, i)
        if not count:
            break
        for _ in range(count):
            event, i = _read_join_event(data, i)
            events.append(event)
    record: JoinEventBatch = _new(JoinEventBatch)
    _JEB_SET[0](record, tuple(events))
    return record, i


def _guarded(read: Callable[[bytes, int], tuple[Any, int]]) -> FastDecoder:
    def decode(data: bytes) -> Any:
        try:
            record, end = read(data, _HEADER_SIZE)
        except _GIVE_UP_ERRORS:
            return None  # fastavro's path decodes it or raises the proper CodecError
        return record if end == len(data) else None  # a short slice, or bytes left over

    return decode


def _python_decoders() -> dict[str, FastDecoder]:
    """The decoders whose record classes still have the fields they fill."""
    decoders: dict[str, FastDecoder] = {}
    if MI_SET:
        decoders["dev.shadoweval.ModelInput"] = _guarded(read_model_input)
    if _P_SET:
        decoders["dev.shadoweval.Prediction"] = _guarded(_read_prediction)
    if _GT_SET:
        decoders["dev.shadoweval.GroundTruth"] = _decode_ground_truth
    if _JE_SET and _P_SET and MI_SET:
        decoders["dev.shadoweval.JoinEvent"] = _guarded(_read_join_event)
        if _JEB_SET:
            decoders["dev.shadoweval.JoinEventBatch"] = _guarded(_read_join_event_batch)
    return decoders


PYTHON_DECODERS = _python_decoders()
"""Full record name -> decoder of a whole message (header included), in Python."""


def _descriptors(cls: type[Any]) -> tuple[Any, ...]:
    return tuple(getattr(cls, f.name) for f in fields(cls))


def _native_decoders() -> dict[str, FastDecoder]:
    """The C readers (:mod:`streams.codec._cread`, built when a compiler was there) of
    the records the Python ones read; empty without them or when
    ``SHADOW_EVAL_PURE_PYTHON`` is set."""
    if python_forced() or not (MI_SET and _P_SET and _GT_SET and _JE_SET and _JEB_SET):
        return {}
    try:
        from streams.codec import _cread
    except ImportError:
        return {}
    _cread.configure(
        prediction=(Prediction, _descriptors(Prediction)),
        ground_truth=(GroundTruth, _descriptors(GroundTruth)),
        join_event=(JoinEvent, _descriptors(JoinEvent)),
        join_event_batch=(JoinEventBatch, _descriptors(JoinEventBatch)),
        model_input=(ModelInput, _descriptors(ModelInput)),
        roles=_ROLES,
        kinds=_KINDS,
        names_of=names_of,
        json_loads=json.loads,
        separator=_SEP,
        give_up_errors=_GIVE_UP_ERRORS,
    )
    return {
        "dev.shadoweval.ModelInput": _cread.decode_model_input,
        "dev.shadoweval.Prediction": _cread.decode_prediction,
        "dev.shadoweval.GroundTruth": _cread.decode_ground_truth,
        "dev.shadoweval.JoinEvent": _cread.decode_join_event,
        "dev.shadoweval.JoinEventBatch": _cread.decode_join_event_batch,
    }


NATIVE_DECODERS = _native_decoders()
"""The C readers in use (same records as the Python ones, a few times faster)."""
DECODERS = PYTHON_DECODERS | NATIVE_DECODERS
"""Full record name -> decoder of a whole message (header included), for the records
whose classes match; :func:`streams.codec.fast.fast_codec_for` hands them out."""
