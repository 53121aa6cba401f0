"""Avro in the Confluent wire format: magic byte 0, 4-byte big-endian schema id, Avro body."""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO
from typing import Any, Protocol, TypeVar

from fastavro import schemaless_reader, schemaless_writer

from streams.codec.catalogue import SchemaCatalogue, SchemaEntry
from streams.codec.convert import FROM_AVRO, TO_AVRO, Datum, EncodeError
from streams.codec.fast import FastDecoder, FastEncoder, fast_codec_for
from streams.records import Record

__all__ = ["Codec", "CodecError", "EncodeError", "SchemaSource"]

MAGIC_BYTE = 0
HEADER_SIZE = 5
T = TypeVar("T")


class CodecError(ValueError):
    """A message that cannot be decoded, with where it came from when known.

    Examples
    --------
    >>> str(CodecError("unknown schema id 99", topic="shadow.inputs", partition=2, offset=7))
    'cannot decode shadow.inputs[2]@7: unknown schema id 99'
    """

    def __init__(
        self,
        reason: str,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
        schema_id: int | None = None,
    ) -> None:
        self.reason = reason
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.schema_id = schema_id
        super().__init__(f"cannot decode {self.where}: {reason}")

    @property
    def where(self) -> str:
        if self.topic is None:
            return "message"
        place = self.topic
        if self.partition is not None:
            place += f"[{self.partition}]"
        if self.offset is not None:
            place += f"@{self.offset}"
        return place


class SchemaSource(Protocol):
    """Where schema ids come from: the local catalogue or a Schema Registry."""

    def id_for(self, entry: SchemaEntry) -> int: ...

    def writer_schema(self, schema_id: int) -> tuple[str, dict[str, Any]] | None:
        """(full record name, parsed writer schema) of an id, or None when unknown."""
        ...


class LocalIds:
    """Ids straight from ``schemas/catalogue.json``."""

    def __init__(self, catalogue: SchemaCatalogue) -> None:
        self._catalogue = catalogue

    def id_for(self, entry: SchemaEntry) -> int:
        return entry.id

    def writer_schema(self, schema_id: int) -> tuple[str, dict[str, Any]] | None:
        entry = self._catalogue.by_id(schema_id)
        return None if entry is None else (entry.name, entry.parsed)


class _Reader:
    __slots__ = ("convert", "reader_schema", "record_type", "writer_schema")

    def __init__(
        self,
        record_type: type[Any],
        writer_schema: dict[str, Any],
        reader_schema: dict[str, Any] | None,
        convert: Callable[[Datum], Record],
    ) -> None:
        self.record_type = record_type
        self.writer_schema = writer_schema
        self.reader_schema = reader_schema
        self.convert = convert


class Codec:
    """Encodes :mod:`streams.records` to Confluent-framed Avro and back.

    Parameters
    ----------
    catalogue
        The schemas; the repository's ``schemas/`` by default.
    ids
        Where schema ids come from; the catalogue's own ids by default, or a
        :class:`streams.codec.registry.RegistryIds` for a Schema Registry.
    fast
        Use the hand-written encoders and decoders of the hot records
        (:mod:`streams.codec.fast`, same bytes); ``False`` runs fastavro for everything,
        the reference the tests compare against.

    Examples
    --------
    >>> from streams.records import GroundTruth
    >>> codec = Codec()
    >>> data = codec.encode(GroundTruth("r1", "churn", 0, "yes"))
    >>> data[:5]
    b'\\x00\\x00\\x00\\x00\\x03'
    >>> codec.decode(data)
    GroundTruth(request_id='r1', model='churn', timestamp_ms=0, value='yes')
    """

    def __init__(
        self,
        catalogue: SchemaCatalogue | None = None,
        ids: SchemaSource | None = None,
        *,
        fast: bool = True,
    ) -> None:
        self.fast = fast
        self.catalogue = catalogue or SchemaCatalogue.default()
        self.ids: SchemaSource = ids or LocalIds(self.catalogue)
        self._writers: dict[type[Any], tuple[bytes, dict[str, Any], Callable[[Any], Datum]]] = {}
        self._readers: dict[int, _Reader] = {}
        # Hand-written codecs of the hot records (streams.codec.fast), by record type and
        # by 5-byte header; each returns None when fastavro has to decide instead.
        self._fast_encoders: dict[type[Any], FastEncoder] = {}
        self._fast_decoders: dict[bytes, FastDecoder] = {}

    def encode(self, record: Record) -> bytes:
        """The wire bytes of one record; :class:`EncodeError` names what cannot be written."""
        fast = self._fast_encoders.get(type(record))
        if fast is not None:
            data = fast(record)
            if data is not None:
                return data
        writer = self._writers.get(type(record))
        if writer is None:
            writer = self._writer_for(type(record))
        header, schema, to_avro = writer
        buffer = BytesIO()
        buffer.write(header)
        try:
            schemaless_writer(buffer, schema, to_avro(record))
        except EncodeError:
            raise
        except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as exc:
            raise EncodeError(f"{type(record).__name__} cannot be encoded: {exc}") from exc
        return buffer.getvalue()

    def header_of(self, record_type: type[Any], *, version: int | None = None) -> bytes:
        """The 5-byte header (magic byte + schema id) records of ``record_type`` get, or
        that version ``version`` of its schema wrote (to recognise older records)."""
        if version is not None:
            try:
                name = TO_AVRO[record_type][0]
                entry = next(e for e in self.catalogue.versions(name) if e.version == version)
            except (KeyError, StopIteration):
                raise EncodeError(f"no version {version} of {record_type.__name__}") from None
            return bytes([MAGIC_BYTE]) + self.ids.id_for(entry).to_bytes(4, "big")
        writer = self._writers.get(record_type) or self._writer_for(record_type)
        return writer[0]

    def decode(
        self,
        data: bytes | None,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> Record:
        """One record from its wire bytes; anything malformed raises :class:`CodecError`."""
        if type(data) is bytes:  # (a bytearray or memoryview takes the fastavro path)
            fast = self._fast_decoders.get(data[:HEADER_SIZE])
            if fast is not None:
                record: Record | None = fast(data)
                if record is not None:
                    return record
        if not data or len(data) < HEADER_SIZE:
            raise CodecError(
                f"{len(data or b'')} bytes is shorter than the 5-byte header",
                topic=topic,
                partition=partition,
                offset=offset,
            )
        if data[0] != MAGIC_BYTE:
            raise CodecError(
                f"first byte is {data[0]}, not the magic byte 0 (not shadow-eval Avro)",
                topic=topic,
                partition=partition,
                offset=offset,
            )
        schema_id = int.from_bytes(data[1:HEADER_SIZE], "big")
        reader = self._readers.get(schema_id)
        if reader is None:
            reader = self._reader_for(schema_id, topic, partition, offset)
        buffer = BytesIO(data)
        buffer.seek(HEADER_SIZE)
        try:
            datum = schemaless_reader(buffer, reader.writer_schema, reader.reader_schema)
            if buffer.tell() != len(data):
                raise ValueError(f"{len(data) - buffer.tell()} bytes left after the record")
            return reader.convert(datum)  # type: ignore[arg-type]
        except Exception as exc:  # fastavro raises many types on bad bytes; one error out
            raise CodecError(
                f"schema id {schema_id} body is corrupt or truncated ({type(exc).__name__}: {exc})",
                topic=topic,
                partition=partition,
                offset=offset,
                schema_id=schema_id,
            ) from exc

    def decode_as(
        self,
        record_type: type[T],
        data: bytes | None,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> T:
        """Like :meth:`decode`, but a record of another type is a :class:`CodecError` too."""
        if type(data) is bytes:  # the fast path inlined: the worker's per-message call
            fast = self._fast_decoders.get(data[:HEADER_SIZE])
            if fast is not None:
                found = fast(data)
                if isinstance(found, record_type):
                    return found
        record = self.decode(data, topic=topic, partition=partition, offset=offset)
        if not isinstance(record, record_type):
            raise CodecError(
                f"expected {record_type.__name__}, got {type(record).__name__}",
                topic=topic,
                partition=partition,
                offset=offset,
            )
        return record

    def _writer_for(
        self, record_type: type[Any]
    ) -> tuple[bytes, dict[str, Any], Callable[[Any], Datum]]:
        try:
            name, to_avro = TO_AVRO[record_type]
        except KeyError:
            raise EncodeError(f"{record_type.__name__} is not a shadow-eval record") from None
        entry = self.catalogue.latest(name)
        header = bytes([MAGIC_BYTE]) + self.ids.id_for(entry).to_bytes(4, "big")
        writer = (header, entry.parsed, to_avro)
        self._writers[record_type] = writer
        fast = fast_codec_for(name, header, entry.parsed) if self.fast else None
        if fast is not None:
            self._fast_encoders[record_type] = fast[0]
        return writer

    def _reader_for(
        self, schema_id: int, topic: str | None, partition: int | None, offset: int | None
    ) -> _Reader:
        found = self.ids.writer_schema(schema_id)
        if found is None or found[0] not in FROM_AVRO:
            raise CodecError(
                f"unknown schema id {schema_id}",
                topic=topic,
                partition=partition,
                offset=offset,
                schema_id=schema_id,
            )
        name, writer_schema = found
        latest = self.catalogue.latest(name)
        # Same schema: read directly. Older (or registry) version: resolve to our latest.
        reader_schema = None if writer_schema is latest.parsed else latest.parsed
        record_type, convert = FROM_AVRO[name]
        reader = _Reader(record_type, writer_schema, reader_schema, convert)
        self._readers[schema_id] = reader
        header = bytes([MAGIC_BYTE]) + schema_id.to_bytes(4, "big")
        fast = fast_codec_for(name, header, writer_schema, latest.parsed) if self.fast else None
        if fast is not None:
            self._fast_decoders[header] = fast[1]
        return reader
