"""The one settings object. Nothing else in shadow-eval reads ``os.environ``.

Every field can be set by an environment variable with the ``SHADOW_`` prefix
(``SHADOW_KAFKA_BOOTSTRAP``, ``SHADOW_TOPIC_PREFIX``, ...) or passed explicitly.
Every secret also has a ``_FILE`` twin naming a file that holds it (a mounted Kubernetes
or Docker secret): ``SHADOW_SASL_PASSWORD_FILE``, ``SHADOW_SSL_KEY_PASSWORD_FILE``,
``SHADOW_ALERTS_WEBHOOK_URL_FILE``, ``SHADOW_CHECKPOINT_KEY_FILE``,
``SHADOW_SCHEMA_REGISTRY_PASSWORD_FILE``, ``SHADOW_SCHEMA_REGISTRY_KEY_PASSWORD_FILE``.
``SHADOW_KAFKA_CONFIG_FILE`` names a Java-style ``client.properties`` whose settings
reach every Kafka client (see :func:`streams.kafka.config.file_config`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["SECRET_FILES", "Settings", "TopicNames", "load_settings", "read_properties"]

SECRET_FILES = {
    "sasl_password_file": "sasl_password",
    "ssl_key_password_file": "ssl_key_password",
    "alerts_webhook_url_file": "alerts_webhook_url",
    "checkpoint_key_file": "checkpoint_key",
    "schema_registry_password_file": "schema_registry_password",
    "schema_registry_key_password_file": "schema_registry_key_password",
}
"""``<secret>_file`` setting -> the secret it supplies."""


def read_properties(text: str, source: str = "<properties>") -> dict[str, str]:
    r"""Parse Java ``Properties`` text: ``key=value``, ``key: value`` or ``key value``
    lines, ``#``/``!`` comments, backslash line continuations and escapes.

    Examples
    --------
    >>> read_properties("# c\na.b = 1\nc:2\nd  x\\\n  y\n")
    {'a.b': '1', 'c': '2', 'd': 'xy'}
    """
    out: dict[str, str] = {}
    lines = iter(text.splitlines())
    for raw in lines:
        line = raw.lstrip()
        if not line or line[0] in "#!":
            continue
        while _continues(line):
            line = line[:-1] + next(lines, "").lstrip()
        key, value = _split_property(line)
        if not key:
            raise ValueError(f"{source}: a line has no key: {raw[:40]!r}")
        out[key] = value
    return out


def _continues(line: str) -> bool:
    trailing = len(line) - len(line.rstrip("\\"))
    return trailing % 2 == 1


def _split_property(line: str) -> tuple[str, str]:
    key: list[str] = []
    i = 0
    while i < len(line):
        char = line[i]
        if char == "\\" and i + 1 < len(line):
            key.append(_unescape(line[i + 1]))
            i += 2
            continue
        if char in "=: \t":
            break
        key.append(char)
        i += 1
    rest = line[i:].lstrip(" \t")
    if rest[:1] in ("=", ":"):
        rest = rest[1:].lstrip(" \t")
    value: list[str] = []
    j = 0
    while j < len(rest):
        if rest[j] == "\\" and j + 1 < len(rest):
            value.append(_unescape(rest[j + 1]))
            j += 2
        else:
            value.append(rest[j])
            j += 1
    return "".join(key), "".join(value)


def _unescape(char: str) -> str:
    return {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}.get(char, char)


@dataclass(frozen=True, slots=True)
class TopicNames:
    """Topic names derived from one prefix, so a single setting renames all of them."""

    inputs: str
    live_predictions: str
    shadow_predictions: str
    ground_truth: str
    metrics: str
    alerts: str
    dlq: str
    join_events: str
    """Join stage 1 -> stage 2, keyed by experiment."""
    join_state: str
    """Join stage 1 state changelog (compacted), keyed by request id."""

    @classmethod
    def from_prefix(cls, prefix: str) -> TopicNames:
        return cls(
            inputs=f"{prefix}.inputs",
            live_predictions=f"{prefix}.predictions.live",
            shadow_predictions=f"{prefix}.predictions.shadow",
            ground_truth=f"{prefix}.ground_truth",
            metrics=f"{prefix}.metrics",
            alerts=f"{prefix}.alerts",
            dlq=f"{prefix}.dlq",
            join_events=f"{prefix}.join.events",
            join_state=f"{prefix}.join.state",
        )

    @property
    def per_request(self) -> tuple[str, ...]:
        """Topics keyed by request id; they must be co-partitioned."""
        return (self.inputs, self.live_predictions, self.shadow_predictions, self.ground_truth)

    @property
    def all(self) -> tuple[str, ...]:
        return (
            *self.per_request,
            self.metrics,
            self.alerts,
            self.dlq,
            self.join_events,
            self.join_state,
        )

    @property
    def compacted(self) -> tuple[str, ...]:
        """Topics that keep the latest record per key (state changelogs)."""
        return (self.join_state,)


class Settings(BaseSettings):
    """Connection and naming settings shared by every shadow-eval component.

    Examples
    --------
    >>> s = Settings(kafka_bootstrap="127.0.0.1:9092", topic_prefix="demo")
    >>> s.topics.inputs
    'demo.inputs'
    """

    model_config = SettingsConfigDict(env_prefix="SHADOW_", extra="forbid")

    kafka_bootstrap: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, host:port[,host:port]."
    )
    topic_prefix: str = Field("shadow", description="Prefix of every topic name.")
    partitions: int = Field(6, ge=1, description="Partitions of each topic created by us.")
    replication_factor: int = Field(1, ge=1)
    schema_registry_url: str | None = Field(
        None,
        description="Confluent-compatible Schema Registry URL (e.g. Apicurio's "
        "http://host:8080/apis/ccompat/v7); the local catalogue's ids when unset.",
    )
    schema_registry_username: str | None = Field(
        None, description="HTTP basic-auth user of the Schema Registry."
    )
    schema_registry_password: SecretStr | None = None
    schema_registry_password_file: Path | None = None
    schema_registry_cafile: Path | None = Field(
        None, description="CA bundle (PEM) that signed the Schema Registry's certificate."
    )
    schema_registry_certfile: Path | None = Field(
        None, description="Client certificate (PEM) for a registry that asks for one."
    )
    schema_registry_keyfile: Path | None = None
    schema_registry_key_password: SecretStr | None = None
    schema_registry_key_password_file: Path | None = None
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    sasl_password_file: Path | None = Field(None, description="A file holding sasl_password.")
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_key_password: SecretStr | None = Field(
        None, description="Passphrase of an encrypted ssl_keyfile."
    )
    ssl_key_password_file: Path | None = None
    kafka_config_file: Path | None = Field(
        None,
        description="A Java-style client.properties for every Kafka client (librdkafka keys, "
        "plus sasl.jaas.config and PEM/PKCS12 key and trust stores).",
    )
    alerts_webhook_url: SecretStr | None = Field(
        None, description="Where `alerts tail` POSTs alerts (a secret for Slack)."
    )
    alerts_webhook_url_file: Path | None = None
    checkpoint_key: SecretStr | None = Field(
        None,
        description="HMAC key of the join's stage-2 checkpoints, shared by workers that share "
        "a checkpoint directory; a random per-directory key when unset.",
    )
    checkpoint_key_file: Path | None = None
    cache_dir: Path = Field(
        Path.home() / ".cache" / "shadow-eval",
        description="Where the Kafka jars and local broker data live.",
    )

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap_has_port(cls, value: str) -> str:
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(
                    f"SHADOW_KAFKA_BOOTSTRAP: {server!r} is not host:port (got {value!r})"
                )
        return value

    @field_validator("topic_prefix")
    @classmethod
    def _prefix_is_legal(cls, value: str) -> str:
        allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        if not value or not set(value) <= allowed:
            raise ValueError(
                f"SHADOW_TOPIC_PREFIX: {value!r} may only use letters, digits, '.', '_', '-'"
            )
        return value

    _kafka_properties: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _read_files(self) -> Settings:
        for file_field, secret_field in SECRET_FILES.items():
            path = getattr(self, file_field)
            if path is None:
                continue
            env = f"SHADOW_{file_field.upper()}"
            if getattr(self, secret_field) is not None:
                raise ValueError(f"{env} and SHADOW_{secret_field.upper()} are both set; keep one")
            try:
                text = Path(path).read_text().rstrip("\r\n")
            except OSError as exc:
                raise ValueError(f"{env}: cannot read {path}: {exc.strerror}") from None
            setattr(self, secret_field, SecretStr(text))
        if self.kafka_config_file is not None:
            self._load_kafka_config(Path(self.kafka_config_file))
        return self

    def _load_kafka_config(self, path: Path) -> None:
        try:
            text = path.read_text()
        except OSError as exc:
            raise ValueError(
                f"SHADOW_KAFKA_CONFIG_FILE: cannot read {path}: {exc.strerror}"
            ) from None
        properties = read_properties(text, str(path))
        # The file's address and protocol count unless a SHADOW_ setting names them.
        if "kafka_bootstrap" not in self.model_fields_set and "bootstrap.servers" in properties:
            self.kafka_bootstrap = self._bootstrap_has_port(properties["bootstrap.servers"])
        protocol = properties.get("security.protocol", "").upper()
        if "security_protocol" not in self.model_fields_set and protocol:
            if protocol not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
                raise ValueError(f"{path}: security.protocol={protocol!r} is not a Kafka protocol")
            self.security_protocol = protocol  # type: ignore[assignment]
        self._kafka_properties = properties

    @property
    def kafka_properties(self) -> dict[str, str]:
        """The entries of ``kafka_config_file`` as written (``{}`` without one); secrets
        included, so never log them."""
        return dict(self._kafka_properties)

    @property
    def topics(self) -> TopicNames:
        return TopicNames.from_prefix(self.topic_prefix)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with explicit overrides (CLI options) winning."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
