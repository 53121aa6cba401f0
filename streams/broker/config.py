"""Pure helpers of the local broker: ports, cluster ids and configuration files."""

from __future__ import annotations

import base64
import errno
import socket
import uuid
from collections.abc import Mapping
from pathlib import Path
from string import Template

from streams.broker.errors import BrokerError
from streams.broker.provision import deploy_file

__all__ = [
    "HOST",
    "LOG4J2_CONFIG",
    "free_port",
    "port_in_use",
    "random_cluster_id",
    "render_server_properties",
]

HOST = "127.0.0.1"

#: Broker logging: INFO to stdout, which the launcher redirects to ``<data-dir>/broker.log``.
LOG4J2_CONFIG = """\
status = warn
name = shadow-eval-broker
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.target = SYSTEM_OUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = WARN
"""


def free_port(host: str = HOST) -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it).

    Examples
    --------
    >>> 0 < free_port() < 65536
    True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_in_use(port: int, host: str = HOST) -> bool:
    """Whether a server could not bind ``host:port`` (ignores sockets in TIME_WAIT)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
        return False


def random_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding.

    Examples
    --------
    >>> len(random_cluster_id())
    22
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        if not text.startswith("-"):  # Kafka's Uuid.randomUuid rejects these too
            return text


def render_server_properties(
    *,
    port: int,
    controller_port: int,
    log_dir: Path,
    overrides: Mapping[str, str] | None = None,
    template: str | None = None,
) -> str:
    """Fill ``deploy/server.properties.template``; ``overrides`` win over the template.

    Examples
    --------
    >>> text = render_server_properties(
    ...     port=9092, controller_port=9093, log_dir=Path("/d"), overrides={"num.partitions": "3"}
    ... )
    >>> "listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093" in text
    True
    >>> text.rstrip().endswith("num.partitions=3")
    True
    """
    if template is None:
        template = deploy_file("server.properties.template").read_text()
    try:
        text = Template(template).substitute(
            port=port, controller_port=controller_port, log_dir=log_dir
        )
    except (KeyError, ValueError) as exc:
        raise BrokerError(f"server.properties template has a bad placeholder: {exc}") from exc
    if overrides:
        text = text.rstrip("\n") + "\n\n# overrides\n"
        text += "".join(f"{key}={value}\n" for key, value in overrides.items())
    return text
