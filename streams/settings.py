"""The one settings object. Nothing else in shadow-eval reads ``os.environ``.

Every field can be set by an environment variable with the ``SHADOW_`` prefix
(``SHADOW_KAFKA_BOOTSTRAP``, ``SHADOW_TOPIC_PREFIX``, ...) or passed explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "TopicNames", "load_settings"]


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
        None, description="Confluent Schema Registry URL; the local catalogue when unset."
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
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

    @property
    def topics(self) -> TopicNames:
        return TopicNames.from_prefix(self.topic_prefix)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with explicit overrides (CLI options) winning."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
