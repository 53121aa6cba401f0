"""librdkafka configurations, built from :class:`~streams.settings.Settings` in one place.

Every client of shadow-eval gets the connection and security settings of
:func:`base_config`; each role adds its own keys on top:

- :func:`producer_config`: murmur2 partitioning (as the Java client), idempotence;
- :func:`transactional_config`: a producer with a transactional id (join stage 1);
- :func:`group_config`: a consumer of one of the join's groups (manual offsets,
  committed reads only, end-of-partition events);
- :func:`reader_config`: a consumer that is only *assigned* partitions (status, alerts
  tail, the demo's recorder, changelog restores): nothing committed;
- :func:`admin_config`: an admin client.

Explicit ``overrides`` always win. Components that want their librdkafka log lines
rate-limited pass ``logs="<logger name>"`` (a broker outage makes many lines).

Precedence in :func:`base_config`, lowest first: the ``client.properties`` of
``SHADOW_KAFKA_CONFIG_FILE`` (:func:`file_config`), then the ``SHADOW_`` security settings
that are set, then the role's keys, then ``overrides``.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from streams.kafka.clients import CONFLUENT
from streams.kafka.logs import LibrdkafkaLog, RateLimitedLog
from streams.kafka.problems import error_recorder
from streams.settings import Settings

__all__ = [
    "GROUP_REBALANCE_TIMEOUT_MS",
    "GROUP_SESSION_TIMEOUT_MS",
    "ClientConfigError",
    "Config",
    "admin_config",
    "base_config",
    "client_config",
    "file_config",
    "group_config",
    "librdkafka_logger",
    "producer_config",
    "reader_config",
    "transactional_config",
]

Config = dict[str, Any]

GROUP_SESSION_TIMEOUT_MS = 10_000
GROUP_REBALANCE_TIMEOUT_MS = 30_000
"""Also librdkafka's max.poll.interval: a worker killed while its group rebalances is
dropped after this long (the classic protocol waits that long for every member)."""

_LOGGERS: dict[str, Any] = {}


def librdkafka_logger(name: str) -> Any:
    """A ``logger`` for librdkafka's ``logger`` setting: lines go to the logger ``name``,
    each facility's warnings at most once a minute (one object per name)."""
    logger = _LOGGERS.get(name)
    if logger is None:
        logger = _LOGGERS[name] = LibrdkafkaLog(RateLimitedLog(logging.getLogger(name)))
    return logger


class ClientConfigError(ValueError):
    """A ``client.properties`` entry that librdkafka cannot take (names the key and file)."""


_JAAS_OPTION = re.compile(r'(\w+)\s*=\s*"((?:[^"\\]|\\.)*)"')


def _translate(key: str, value: str, props: Mapping[str, str], source: str) -> Config:
    """One Java client setting as librdkafka settings (``{}``: nothing to pass on)."""
    if key == "sasl.jaas.config":
        if "OAuthBearerLoginModule" in value:
            raise ClientConfigError(
                f"{source}: sasl.jaas.config with OAuthBearerLoginModule: librdkafka takes "
                "sasl.oauthbearer.* keys instead (e.g. sasl.oauthbearer.method=oidc)"
            )
        options = {name: text.replace('\\"', '"') for name, text in _JAAS_OPTION.findall(value)}
        if "username" not in options or "password" not in options:
            raise ClientConfigError(
                f'{source}: sasl.jaas.config has no username="..." password="..."'
            )
        return {"sasl.username": options["username"], "sasl.password": options["password"]}
    if key in ("ssl.truststore.location", "ssl.keystore.location"):
        kind = props.get(key.replace("location", "type"), "JKS").upper()
        if kind == "PEM" and key == "ssl.truststore.location":
            return {"ssl.ca.location": value}
        if kind == "PEM":  # one file: the key and the certificate chain
            return {"ssl.certificate.location": value, "ssl.key.location": value}
        if kind == "PKCS12" and key == "ssl.keystore.location":
            return {"ssl.keystore.location": value}
        raise ClientConfigError(
            f"{source}: {key} of type {kind}: librdkafka reads PEM trust stores and PEM or "
            "PKCS12 key stores (convert with keytool/openssl and set the *.type key)"
        )
    if key in ("ssl.truststore.type", "ssl.keystore.type"):
        return {}
    if key == "ssl.truststore.password":  # protects a JKS/PKCS12 trust store only
        return {}
    if key == "ssl.endpoint.identification.algorithm":
        return {key: value.lower() or "none"}
    return {key: value}


@lru_cache(maxsize=16)
def _file_config(path: str, items: tuple[tuple[str, str], ...]) -> tuple[tuple[str, Any], ...]:
    props = dict(items)
    config: Config = {}
    for key, value in props.items():
        config.update(_translate(key, value, props, path))
    config.pop("bootstrap.servers", None)  # in Settings already (kafka_bootstrap)
    config.pop("security.protocol", None)
    problem = CONFLUENT.check(config)
    if problem is not None:
        raise ClientConfigError(f"{path}: {problem}")
    return tuple(config.items())


def file_config(settings: Settings) -> Config:
    """The librdkafka settings of ``SHADOW_KAFKA_CONFIG_FILE`` (``{}`` without one).

    Keys librdkafka knows pass through; the Java client's ``sasl.jaas.config`` (SCRAM or
    PLAIN), PEM trust and key stores, PKCS12 key stores and an empty
    ``ssl.endpoint.identification.algorithm`` are translated; anything else is a
    :class:`ClientConfigError` naming the key and the file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "client.properties"
    >>> _ = f.write_text("sasl.jaas.config=x.ScramLoginModule required username=\"u\" "
    ...                  "password=\"p\";\nclient.rack=r1\n")
    >>> sorted(file_config(Settings(kafka_config_file=f)))
    ['client.rack', 'sasl.password', 'sasl.username']
    """
    path = settings.kafka_config_file
    if path is None:
        return {}
    items = tuple(settings.kafka_properties.items())  # the cache key: path and content
    return dict(_file_config(str(Path(path)), items))


def base_config(
    settings: Settings, *, logs: str | None = None, overrides: Mapping[str, Any] | None = None
) -> Config:
    """Connection and security settings (SASL, TLS) every client gets.

    Examples
    --------
    >>> config = base_config(Settings(kafka_bootstrap="k:9092"))
    >>> config["bootstrap.servers"], config["security.protocol"]
    ('k:9092', 'PLAINTEXT')
    """
    config: Config = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "security.protocol": settings.security_protocol,
        **file_config(settings),
    }
    if settings.sasl_mechanism:
        config["sasl.mechanism"] = settings.sasl_mechanism
    if settings.sasl_username:
        config["sasl.username"] = settings.sasl_username
    if settings.sasl_password is not None:
        config["sasl.password"] = settings.sasl_password.get_secret_value()
    if settings.ssl_cafile:
        config["ssl.ca.location"] = str(settings.ssl_cafile)
    if settings.ssl_certfile:
        config["ssl.certificate.location"] = str(settings.ssl_certfile)
    if settings.ssl_keyfile:
        config["ssl.key.location"] = str(settings.ssl_keyfile)
    if settings.ssl_key_password is not None:
        config["ssl.key.password"] = settings.ssl_key_password.get_secret_value()
    # librdkafka's lines go to Python logging, never raw to stderr, once a minute per
    # facility; authentication and TLS failures are kept for streams.kafka.problems.
    config["logger"] = librdkafka_logger(logs or "streams.kafka.librdkafka")
    config["error_cb"] = error_recorder(settings.kafka_bootstrap)
    config.update(overrides or {})
    return config


def client_config(settings: Settings, **overrides: Any) -> Config:
    """:func:`base_config` with keyword overrides: for scripts, benchmarks and tests that
    build a plain client of their own.

    Examples
    --------
    >>> client_config(Settings(kafka_bootstrap="k:9092"), acks="all")["acks"]
    'all'
    """
    return base_config(settings, overrides=overrides)


def producer_config(
    settings: Settings, *, logs: str | None = None, overrides: Mapping[str, Any] | None = None
) -> Config:
    """A producer of per-request or per-experiment records.

    ``partitioner=murmur2_random`` is the Java client's (and aiokafka's) partitioner, so a
    request id lands on the same partition of every co-partitioned topic whichever client
    wrote it; ``enable.idempotence``: retries never duplicate or reorder.
    """
    return base_config(
        settings,
        logs=logs,
        overrides={
            "partitioner": "murmur2_random",
            "enable.idempotence": True,
            "linger.ms": 5,
            **(overrides or {}),
        },
    )


def transactional_config(
    settings: Settings,
    group: str,
    *,
    timeout_ms: int,
    logs: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """A transactional producer of ``group``: a fresh ``transactional.id`` per process
    (``<group>-<random>``), so a restarted worker never fences a live one; a killed
    worker's open transaction is aborted by the broker after ``timeout_ms``."""
    return producer_config(
        settings,
        logs=logs,
        overrides={
            "transactional.id": f"{group}-{uuid.uuid4().hex[:12]}",
            "transaction.timeout.ms": timeout_ms,
            "batch.num.messages": 10_000,
            "queue.buffering.max.messages": 1_000_000,
            **(overrides or {}),
        },
    )


def group_config(
    settings: Settings,
    group: str,
    *,
    logs: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """A consumer of one of the join's groups: manual offsets, committed reads only;
    offsets out of range are an error event, never a silent jump
    (:mod:`streams.kafka.offset_loss`)."""
    return base_config(
        settings,
        logs=logs,
        overrides={
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "error",
            "isolation.level": "read_committed",
            "partition.assignment.strategy": "range",  # co-partitioned topics stay together
            "session.timeout.ms": GROUP_SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": GROUP_SESSION_TIMEOUT_MS // 4,
            "max.poll.interval.ms": GROUP_REBALANCE_TIMEOUT_MS,
            # "Read to the end" for expiry and the stage-2 rebuild: an end-of-partition
            # event, which (unlike offsets) also counts transaction markers as read.
            "enable.partition.eof": True,
            # Bound the prefetch (librdkafka's default is up to 64 MB per consumer).
            "queued.max.messages.kbytes": 16_384,
            **(overrides or {}),
        },
    )


def reader_config(
    settings: Settings,
    purpose: str,
    *,
    logs: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """A consumer that is assigned partitions and commits nothing (``group.id`` is
    ``shadow-eval-<purpose>-<random>``: librdkafka wants one, nothing joins it)."""
    return base_config(
        settings,
        logs=logs,
        overrides={
            "group.id": f"shadow-eval-{purpose}-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            **(overrides or {}),
        },
    )


def admin_config(
    settings: Settings, *, quiet: bool = False, overrides: Mapping[str, Any] | None = None
) -> Config:
    """An admin client; ``quiet``: librdkafka logs errors only (a failure is raised to
    the caller anyway, and no "Purging unserved events" notice appears at exit)."""
    return base_config(
        settings, overrides={**({"log_level": 2} if quiet else {}), **(overrides or {})}
    )
