"""Fast Avro for the hot records: ModelInput, Prediction, GroundTruth, JoinEvent (and
JoinEventBatch).

fastavro interprets the schema for every datum and goes through a dict per record; for
the worker, the hook and the join that is most of the per-message cost. These functions
write and read exactly the bytes fastavro does, straight from and into the dataclasses.

They are safe by construction rather than by care:

* the readers and writers of Prediction, GroundTruth, JoinEvent and JoinEventBatch are
  generated from the ``.avsc`` files at import (:mod:`streams.codec.fastgen`); ModelInput's
  (columnar) and the C readers are hand-written and run only where the schema has exactly
  the layout they implement (:mod:`streams.codec.shapes`);
* :func:`fast_codec_for` hands them out only for a writer (and reader) schema with the
  layout they were made for (another version or a registry's schema falls back to
  fastavro);
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

from streams.codec import fastgen, fastwrite
from streams.codec.fastread import DECODERS, FastDecoder, current_shape
from streams.codec.fastwrite import FastEncoder, framing
from streams.codec.shapes import schema_shape

__all__ = ["FastDecoder", "FastEncoder", "fast_codec_for", "schema_shape"]


ENCODERS = {name: framing(encode) for name, encode in fastgen.ENCODERS.items()}
ENCODERS.update(fastwrite.ENCODERS)
# Full name -> (layout, encoder factory, decoder): the records with both.
_FAST: dict[str, tuple[Any, Callable[[bytes], FastEncoder], FastDecoder]] = {
    name: (current_shape(name), ENCODERS[name], DECODERS[name])
    for name in DECODERS
    if name in ENCODERS
}


def fast_codec_for(
    name: str, header: bytes, *schemas: dict[str, Any]
) -> tuple[FastEncoder, FastDecoder] | None:
    """The fast encoder (framing with ``header``) and decoder of record ``name``, when
    every one of ``schemas`` (writer, and reader if resolving) has the exact layout they
    implement; ``None`` otherwise.

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
