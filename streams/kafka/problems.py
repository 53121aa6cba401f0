"""Why a client could not talk to Kafka, in one clear line.

librdkafka reports a wrong password or an untrusted certificate as a connection that
keeps failing: a metadata request then ends in "Broker transport failure", which hides
the cause. Every client of :func:`streams.kafka.config.base_config` gets an ``error_cb``
from :func:`error_recorder` that remembers the last authentication or TLS failure per
bootstrap address; :func:`explain` turns a failed request into that cause.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException

__all__ = ["ErrorRecorder", "error_recorder", "explain", "metadata"]

_CAUSES = {
    KafkaError._AUTHENTICATION: "authentication failed",
    KafkaError._SSL: "TLS handshake failed",
}
_NOISE = re.compile(r"^\S+://\S+/(?:bootstrap|\d+): |\s*\(after \d+ms in state \w+\)$")


class ErrorRecorder:
    """An ``error_cb`` keeping the last authentication or TLS failure it was told of.

    Examples
    --------
    >>> recorder = ErrorRecorder()
    >>> recorder(KafkaError(KafkaError._AUTHENTICATION, "sasl_ssl://h:1/bootstrap: "
    ...     "SASL authentication error: invalid credentials (after 3ms in state AUTH_REQ)"))
    >>> recorder.cause
    'authentication failed: SASL authentication error: invalid credentials'
    """

    def __init__(self) -> None:
        self.cause: str | None = None
        self._lock = threading.Lock()

    def __call__(self, error: KafkaError) -> None:
        what = _CAUSES.get(error.code())
        if what is None:
            return
        text = _NOISE.sub("", _NOISE.sub("", error.str()))
        with self._lock:
            self.cause = f"{what}: {text}"

    def take(self) -> str | None:
        """The cause recorded, forgotten once read (the next failure may be another)."""
        with self._lock:
            cause, self.cause = self.cause, None
        return cause


_RECORDERS: dict[str, ErrorRecorder] = {}
_RECORDERS_LOCK = threading.Lock()


def error_recorder(bootstrap: str) -> ErrorRecorder:
    """The one recorder of ``bootstrap`` (shared by every client of that address)."""
    with _RECORDERS_LOCK:
        recorder = _RECORDERS.get(bootstrap)
        if recorder is None:
            recorder = _RECORDERS[bootstrap] = ErrorRecorder()
        return recorder


def explain(bootstrap: str, error: object, client: Any = None) -> str:
    """The cause of a failed request to ``bootstrap``: a recorded authentication or TLS
    failure if there is one, else ``error`` as librdkafka gave it.

    ``client`` (one of the failed request's) is polled briefly first: librdkafka hands
    its error callbacks over only on ``poll``.
    """
    if client is not None and hasattr(client, "poll"):
        with contextlib.suppress(Exception):  # a diagnosis must not fail in its turn
            client.poll(0.2)
    cause = error_recorder(bootstrap).take()
    if cause is not None:
        return cause
    if isinstance(error, BaseException) and error.args:
        error = error.args[0]
    return str(error.str() if isinstance(error, KafkaError) else error)


def metadata(client: Any, bootstrap: str, timeout: float, topic: str | None = None) -> Any:
    """``client.list_topics`` that gives up early on an authentication or TLS failure.

    librdkafka retries a failing connection until ``timeout``; a wrong password or an
    untrusted certificate will not heal by then, so the request is made in short slices
    and a recorded cause ends the wait with a ``KafkaException`` carrying it.
    """
    deadline = time.monotonic() + timeout
    recorder = error_recorder(bootstrap)
    while True:
        remaining = deadline - time.monotonic()
        try:
            return client.list_topics(topic, timeout=max(min(remaining, 1.0), 0.01))
        except KafkaException:
            with contextlib.suppress(Exception):
                client.poll(0)
            if recorder.cause is not None or time.monotonic() >= deadline:
                raise
