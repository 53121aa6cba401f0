"""``shadow-eval ingest cloudevents``: KServe inference-logger CloudEvents in, hook records out.

KServe's inference logger (``logger: {mode: all, url: ...}`` on an InferenceService)
POSTs each inference request and response as a CloudEvent, binary mode by default
(``ce-id``, ``ce-type``, ``ce-source``, the extensions ``ce-inferenceservicename``,
``ce-namespace``, ``ce-component``, ``ce-endpoint``; the payload as the body) or
structured mode (``application/cloudevents+json``). The two events of one inference
share the event id and differ in type: ``org.kubeflow.serving.inference.request`` and
``org.kubeflow.serving.inference.response``.

:class:`CloudEventsIngest` parses each with the ``cloudevents`` SDK, pairs the two by
id (:mod:`streams.ingest.pairing`), and publishes each row's features and live
prediction through the producer hook (:class:`~streams.hook.ShadowPublisher`: sampling,
privacy, the bounded buffer and its metrics, as in a serving app). The request id of a
row is the event id, with ``.<row>`` appended when the request held several rows. An
event that cannot be decoded is answered ``400`` with the reason and counted
(``shadow_ingest_events_total{outcome="undecodable"}``).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cloudevents.core.bindings.http import HTTPMessage, from_http_event
from prometheus_client import CollectorRegistry, Counter, generate_latest

from streams.ingest.pairing import Half, Pair, Pairing
from streams.ingest.payloads import PayloadError, request_rows, response_values

__all__ = ["CloudEventsIngest", "IngestError", "Publish", "serve"]

log = logging.getLogger("streams.ingest")
REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
MAX_BODY_BYTES = 16 * 1024 * 1024
OUTCOMES = ("request", "response", "published", "undecodable", "duplicate", "mismatched")

Publish = Callable[..., Any]
"""``ShadowPublisher.publish``'s signature: features, prediction, request_id=..., ..."""


class IngestError(ValueError):
    """Why an event was refused (the 400 answer's body)."""


def _prediction(value: Any) -> tuple[Any, dict[str, float] | None]:
    """A row's prediction and probabilities: a list or mapping of numbers is a
    probability vector whose most probable class is the prediction."""
    if isinstance(value, Mapping):
        vector = {str(k): float(v) for k, v in value.items()}
    elif (
        isinstance(value, list)
        and value
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        vector = {str(i): float(v) for i, v in enumerate(value)}
    else:
        return value, None
    if not vector:
        raise IngestError("an empty probability vector")
    return max(vector, key=vector.__getitem__), vector


def _time_ms(value: Any) -> float | None:
    return value.timestamp() * 1000.0 if isinstance(value, datetime) else None


class CloudEventsIngest:
    """Turns logged inference events into hook records.

    Parameters
    ----------
    publish
        Where rows go, ``ShadowPublisher.publish`` in production.
    model
        The model name of every record; ``None``: the event's
        ``inferenceservicename`` extension.
    version
        The live version of every record.
    columns
        Names of unnamed feature columns (``--features``).
    pairing
        How long a half waits for its other half.
    registry
        Where ``shadow_ingest_events_total`` is registered.
    """

    def __init__(
        self,
        publish: Publish,
        *,
        version: str,
        model: str | None = None,
        columns: Sequence[str] | None = None,
        pairing: Pairing | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.publish, self.version, self.model = publish, version, model
        self.columns = tuple(columns) if columns else None
        self.pairing = pairing or Pairing()
        self.registry = registry or CollectorRegistry()
        self._events = Counter(
            "shadow_ingest_events_total",
            "Logged inference events by outcome (published counts rows).",
            ["outcome"],
            registry=self.registry,
        )
        self._counts = dict.fromkeys(OUTCOMES, 0)
        self._lock = threading.Lock()
        for outcome in OUTCOMES:
            self._events.labels(outcome)

    def count(self, outcome: str) -> int:
        """How many events (rows for ``published``) had ``outcome`` so far."""
        return self._counts[outcome]

    def _count(self, outcome: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[outcome] += amount
        self._events.labels(outcome).inc(amount)

    def handle(self, headers: Mapping[str, str], body: bytes) -> None:
        """Take one HTTP message; :class:`IngestError` (and a count) when it is refused."""
        try:
            half = self._half(headers, body)
        except IngestError:
            self._count("undecodable")
            raise
        self._count(half.kind)
        duplicates = self.pairing.duplicates
        pair = self.pairing.offer(half)
        if self.pairing.duplicates != duplicates:
            self._count("duplicate")
        if pair is not None:
            self._publish(pair)

    def _half(self, headers: Mapping[str, str], body: bytes) -> Half:
        try:
            event = from_http_event(HTTPMessage(dict(headers), body))
        except Exception as exc:  # the SDK raises several types for malformed events
            raise IngestError(f"not a CloudEvent: {type(exc).__name__}: {exc}") from None
        kind = {REQUEST_TYPE: "request", RESPONSE_TYPE: "response"}.get(event.get_type())
        if kind is None:
            raise IngestError(f"event type {event.get_type()!r} is not an inference event")
        data = event.get_data()
        if isinstance(data, bytes | str):
            try:
                data = json.loads(data)
            except ValueError:
                raise IngestError("the payload is not JSON") from None
        try:
            if kind == "request":
                rows: list[Any] = request_rows(data, self.columns)
            else:
                rows = response_values(data)
        except PayloadError as exc:
            raise IngestError(f"{kind} payload: {exc}") from None
        model = self.model or event.get_extension("inferenceservicename")
        return Half(event.get_id(), kind, rows, model, _time_ms(event.get_time()))  # type: ignore[arg-type]

    def _publish(self, pair: Pair) -> None:
        request, response = pair.request, pair.response
        if len(request.rows) != len(response.rows):
            self._count("mismatched")
            raise IngestError(
                f"event {request.event_id}: {len(request.rows)} request rows, "
                f"{len(response.rows)} predictions"
            )
        model = request.model or response.model
        if not model:
            self._count("undecodable")
            raise IngestError("no model name: give --model or log ce-inferenceservicename")
        latency = 0.0
        if request.time_ms is not None and response.time_ms is not None:
            latency = max(response.time_ms - request.time_ms, 0.0)
        single = len(request.rows) == 1
        for index, (features, value) in enumerate(zip(request.rows, response.rows, strict=True)):
            prediction, probabilities = _prediction(value)
            self.publish(
                features,
                prediction,
                request_id=request.event_id if single else f"{request.event_id}.{index}",
                model=model,
                version=self.version,
                probabilities=probabilities,
                latency_ms=latency,
            )
        self._count("published", len(request.rows))


def _handler(ingest: CloudEventsIngest) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self._answer(413, f"over {MAX_BODY_BYTES} bytes")
                self.close_connection = True
                return
            body = self.rfile.read(length)
            try:
                ingest.handle(dict(self.headers.items()), body)
            except IngestError as exc:
                self._answer(400, str(exc))
                return
            self._answer(202, "accepted")

        def do_GET(self) -> None:
            if self.path == "/metrics":
                data = generate_latest(ingest.registry)
                self._answer(200, data.decode(), "text/plain; version=0.0.4")
            elif self.path in ("/healthz", "/readyz"):
                self._answer(200, "ok")
            else:
                self._answer(404, "not found")

        def _answer(self, status: int, text: str, content_type: str = "text/plain") -> None:
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)

    return Handler


def serve(ingest: CloudEventsIngest, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Start the HTTP endpoint in a daemon thread; ``shutdown()`` stops it."""
    server = ThreadingHTTPServer((host, port), _handler(ingest))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="shadow-ingest", daemon=True).start()
    return server
