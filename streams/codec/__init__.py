"""Avro codec for every shadow-eval record, in the Confluent wire format.

``Codec().encode(record)`` / ``Codec().decode(data)``; see :class:`streams.codec.wire.Codec`.
"""

from streams.codec.catalogue import SchemaCatalogue, SchemaEntry
from streams.codec.convert import EncodeError
from streams.codec.registry import RegistryError, codec_for
from streams.codec.wire import Codec, CodecError

__all__ = [
    "Codec",
    "CodecError",
    "EncodeError",
    "RegistryError",
    "SchemaCatalogue",
    "SchemaEntry",
    "codec_for",
]
