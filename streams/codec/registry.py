"""Schema ids from a Confluent Schema Registry, so registry tooling can read our topics."""

from __future__ import annotations

import json
from typing import Any, cast

from fastavro import parse_schema

from streams.codec.catalogue import SchemaCatalogue, SchemaEntry

__all__ = ["RegistryIds"]


class RegistryIds:
    """Registers each schema under its record name (RecordNameStrategy) and resolves ids.

    Parameters
    ----------
    url
        The registry's URL, e.g. ``http://localhost:8081``.
    catalogue
        Our schemas; a fetched writer schema is matched to one of them by full name.

    Examples
    --------
    >>> ids = RegistryIds("http://127.0.0.1:8081")  # doctest: +SKIP
    >>> Codec(ids=ids).encode(record)  # doctest: +SKIP
    """

    def __init__(self, url: str, catalogue: SchemaCatalogue | None = None) -> None:
        from confluent_kafka.schema_registry import SchemaRegistryClient

        self._client = SchemaRegistryClient({"url": url})
        self._catalogue = catalogue or SchemaCatalogue.default()
        self._ids: dict[str, int] = {}

    def id_for(self, entry: SchemaEntry) -> int:
        if entry.name not in self._ids:
            from confluent_kafka.schema_registry import Schema

            # from_dict: Schema is an attrs class, whose __init__ mypy sees only with attrs
            # installed (the ``registry`` extra); this classmethod is typed either way.
            schema = Schema.from_dict({"schema": json.dumps(entry.expanded), "schemaType": "AVRO"})
            self._ids[entry.name] = self._client.register_schema(entry.name, schema)
        return self._ids[entry.name]

    def writer_schema(self, schema_id: int) -> tuple[str, dict[str, Any]] | None:
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            fetched = self._client.get_schema(schema_id)
        except SchemaRegistryError:
            return None
        raw = json.loads(fetched.schema_str or "null")
        if not isinstance(raw, dict) or raw.get("type") != "record":
            return None
        name = raw["name"] if "." in raw["name"] else f"{raw.get('namespace', '')}.{raw['name']}"
        return name, cast(dict[str, Any], parse_schema(raw))
