"""The fast Avro writers: ModelInput's, hand-written (it is columnar), and the generated
ones of Prediction, GroundTruth, JoinEvent and JoinEventBatch
(:mod:`streams.codec.fastgen`): fastavro's exact bytes.

Each encoder returns ``None`` instead of bytes for anything it does not handle exactly
(a value of an unexpected type, a reserved character, an out-of-range long, text that
is not valid UTF-8); the caller then runs fastavro, which writes it or raises the
proper :class:`~streams.codec.convert.EncodeError`. See :mod:`streams.codec.fast`.

Every record writer takes the bytes to put before the body: the 5-byte header of a
whole message, or the union branch index of a record nested in a JoinEvent.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from streams.avro_bytes import (
    LEN,
    LEN_TABLE,
    cached_long,
    string_map,
    text,
    varint,
)
from streams.codec.convert import FEATURE_SEPARATOR
from streams.records import (
    ModelInput,
)

__all__ = ["ENCODERS", "FastEncoder", "encode_model_input", "framing"]

FastEncoder = Callable[[Any], bytes | None]

_SEP = FEATURE_SEPARATOR
_MAX_LONG = 1 << 63


_PACKERS: dict[int, Callable[..., bytes]] = {}


def _packer(count: int) -> Callable[..., bytes]:
    pack = _PACKERS.get(count)
    if pack is None:
        if len(_PACKERS) >= 1024:
            _PACKERS.clear()
        pack = _PACKERS[count] = struct.Struct(f"<{count}d").pack
    return pack


def _joined(mapping: Mapping[str, Any], joined: str) -> bool:
    """The checks :mod:`streams.codec.convert` makes: no empty name, no separator inside."""
    return joined.count(_SEP) == max(len(mapping) - 1, 0) and "" not in mapping


def encode_model_input(header: bytes, r: ModelInput) -> bytes | None:
    request_id, model, ts = r.request_id, r.model, r.timestamp_ms
    if type(request_id) is not str or type(model) is not str or type(ts) is not int:
        return None
    if not -_MAX_LONG <= ts < _MAX_LONG:
        return None
    numeric, categorical = r.numeric, r.categorical
    try:
        numeric_names = _SEP.join(numeric)
        cat_names = _SEP.join(categorical)
        cat_values = _SEP.join(categorical.values())
        # struct converts each value with PyFloat_AsDouble, as convert's array("d")
        # does, so the same values pass and the bytes are identical; 2.5x faster.
        packed = _packer(len(numeric))(*numeric.values())
        extra = r.extra
        extra_part = (
            b"\x00" if extra is None else b"\x02" + text(json.dumps(extra, allow_nan=False))
        )
        segments = string_map(r.segments)
        if (
            segments is None
            or not _joined(numeric, numeric_names)
            or not _joined(categorical, cat_names)
            or cat_values.count(_SEP) != max(len(categorical) - 1, 0)
        ):
            return None
        size = len(packed)
        return b"".join(
            (
                header,
                text(request_id),
                text(model),
                cached_long(ts),
                text(numeric_names),
                LEN[size] if size < LEN_TABLE else varint(size << 1),
                packed,
                text(cat_names),
                text(cat_values),
                segments,
                extra_part,
            )
        )
    except (TypeError, ValueError, AttributeError, OverflowError, RecursionError, struct.error):
        return None  # fastavro's path raises the proper EncodeError


def framing(encode: Callable[[bytes, Any], bytes | None]) -> Callable[[bytes], FastEncoder]:
    """The factory of the encoder that frames records with a given 5-byte header."""

    def encoder(header: bytes) -> FastEncoder:
        return partial(encode, header)  # a C-level call: no frame on the hot path

    return encoder


ENCODERS: dict[str, Callable[[bytes], FastEncoder]] = {
    "dev.shadoweval.ModelInput": framing(encode_model_input),
}
"""Full record name -> factory of the encoder that frames with a given 5-byte header (the
hand-written ones; :mod:`streams.codec.fast` adds the generated ones)."""
