"""Schema ids from a Confluent-compatible Schema Registry, so registry tooling can read
our topics (and so can we: a registry id maps back to the catalogue schema it names)."""

from __future__ import annotations

import json
import time
import weakref
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit, urlunsplit

from fastavro import parse_schema

from streams.codec.catalogue import SchemaCatalogue, SchemaEntry
from streams.codec.convert import TO_AVRO, EncodeError
from streams.codec.wire import Codec
from streams.settings import Settings

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import SchemaRegistryClient

__all__ = ["RegistryError", "RegistryIds", "codec_for", "registry_config"]

RETRY_AFTER_S = 5.0
"""After a failed call, :meth:`RegistryIds.id_for` fails at once for this long (the
hook's sender must not wait on a dead registry once per record)."""


class RegistryError(EncodeError):
    """The Schema Registry cannot be used (unreachable, refused credentials, no client
    library); the message names the registry, never a secret.

    An :class:`EncodeError`, so the hook counts a record it cannot register and goes on.
    """


def _shown(url: str) -> str:
    """``url`` without any ``user:password@`` part."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def registry_config(settings: Settings) -> dict[str, Any]:
    """The ``SchemaRegistryClient`` configuration of ``settings`` (URL, basic auth, TLS).

    Examples
    --------
    >>> s = Settings(schema_registry_url="https://sr:8081", schema_registry_username="u",
    ...              schema_registry_password="p", schema_registry_cafile="/ca.pem")
    >>> sorted(registry_config(s))
    ['basic.auth.user.info', 'ssl.ca.location', 'timeout', 'url']
    """
    if not settings.schema_registry_url:
        raise ValueError("SHADOW_SCHEMA_REGISTRY_URL is not set")
    config: dict[str, Any] = {"url": settings.schema_registry_url, "timeout": 10}
    if settings.schema_registry_username is not None:
        password = settings.schema_registry_password
        secret = "" if password is None else password.get_secret_value()
        config["basic.auth.user.info"] = f"{settings.schema_registry_username}:{secret}"
    files = {
        "ssl.ca.location": settings.schema_registry_cafile,
        "ssl.certificate.location": settings.schema_registry_certfile,
        "ssl.key.location": settings.schema_registry_keyfile,
    }
    config.update({key: str(path) for key, path in files.items() if path is not None})
    if settings.schema_registry_key_password is not None:
        config["ssl.key.password"] = settings.schema_registry_key_password.get_secret_value()
    return config


class RegistryIds:
    """Registers each schema under its record name (RecordNameStrategy) and resolves ids.

    Parameters
    ----------
    config
        The registry's URL (``http://localhost:8081``) or a whole ``SchemaRegistryClient``
        configuration (:func:`registry_config`).
    catalogue
        Our schemas; a fetched writer schema equal to a catalogue version is read as that
        version (fast paths included), any other one is parsed as the registry has it.
    client
        A ``SchemaRegistryClient`` to use instead of making one from ``config``.

    Examples
    --------
    >>> ids = RegistryIds("http://127.0.0.1:8081")  # doctest: +SKIP
    >>> Codec(ids=ids).encode(record)  # doctest: +SKIP
    """

    def __init__(
        self,
        config: str | dict[str, Any],
        catalogue: SchemaCatalogue | None = None,
        *,
        client: SchemaRegistryClient | None = None,
    ) -> None:
        config = {"url": config} if isinstance(config, str) else dict(config)
        self._raw_url = str(config["url"])
        self.url = _shown(self._raw_url)
        try:
            from confluent_kafka.schema_registry import SchemaRegistryClient
        except ImportError as exc:  # the registry client's own dependencies (authlib, ...)
            raise RegistryError(
                f"a Schema Registry is configured but its client cannot be imported ({exc}): "
                "pip install 'confluent-kafka[schemaregistry]'"
            ) from None
        try:
            self._client = client or SchemaRegistryClient.new_client(config)  # mock:// too
        except (ValueError, TypeError, OSError) as exc:
            raise RegistryError(f"Schema Registry {self.url}: bad client setting: {exc}") from None
        # Its HTTP connections close with this object (or at exit), not left to the GC.
        weakref.finalize(self, self._client.close)
        self._catalogue = catalogue or SchemaCatalogue.default()
        self._ids: dict[str, int] = {}
        self._failed_until = 0.0

    def id_for(self, entry: SchemaEntry) -> int:
        found = self._ids.get(entry.name)
        if found is not None:
            return found
        if time.monotonic() < self._failed_until:
            raise RegistryError(f"Schema Registry {self.url} failed moments ago; not retried yet")
        from confluent_kafka.schema_registry import Schema

        # from_dict: Schema is an attrs class, whose __init__ mypy sees only with attrs
        # installed; this classmethod is typed either way.
        schema = Schema.from_dict({"schema": json.dumps(entry.expanded), "schemaType": "AVRO"})
        try:
            schema_id = self._client.register_schema(entry.name, schema)
        except Exception as exc:  # httpx, SchemaRegistryError, ssl: one error out
            self._failed_until = time.monotonic() + RETRY_AFTER_S
            raise self._error(f"cannot register {entry.name}", exc) from None
        self._ids[entry.name] = schema_id
        return schema_id

    def writer_schema(self, schema_id: int) -> tuple[str, dict[str, Any]] | None:
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            fetched = self._client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                return None  # an id the registry never gave: the record is bad, not us
            raise self._error(f"cannot fetch schema id {schema_id}", exc) from None
        except Exception as exc:
            raise self._error(f"cannot fetch schema id {schema_id}", exc) from None
        raw = json.loads(fetched.schema_str or "null")
        if not isinstance(raw, dict) or raw.get("type") != "record":
            return None
        name = raw["name"] if "." in raw["name"] else f"{raw.get('namespace', '')}.{raw['name']}"
        if name in self._catalogue.names():
            for entry in self._catalogue.versions(name):
                if entry.expanded == raw:
                    return name, entry.parsed  # one of ours: read it as the catalogue's
        return name, cast(dict[str, Any], parse_schema(raw))

    def _error(self, what: str, exc: Exception) -> RegistryError:
        reason = str(exc).replace(self._raw_url, self.url) or "no detail"
        return RegistryError(f"Schema Registry {self.url}: {what}: {type(exc).__name__}: {reason}")


def codec_for(settings: Settings, *, register: bool = True) -> Codec:
    """The codec of ``settings``: the catalogue's ids, or a Schema Registry's when
    ``schema_registry_url`` is set.

    With ``register`` (the workers and the join) every record schema is registered now,
    so a wrong URL or refused credentials stop the command at start with one
    :class:`RegistryError`, and no record ever waits on the registry later. The hook
    passes ``False``: its background thread registers on first use and counts failures.
    """
    if not settings.schema_registry_url:
        return Codec()
    codec = Codec(ids=RegistryIds(registry_config(settings)))
    if register:
        for record_type in TO_AVRO:
            codec.header_of(record_type)
    return codec
