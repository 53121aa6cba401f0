"""``ShadowPublisher``: what a serving app creates once and calls on every request."""

from __future__ import annotations

import atexit
import itertools
import logging
import threading
import time
from collections.abc import Collection, Mapping
from types import TracebackType
from typing import Any

from prometheus_client import CollectorRegistry

from streams.codec import Codec, codec_for
from streams.hook.buffer import InFlightBuffer
from streams.hook.features import Privacy
from streams.hook.ids import uuid7
from streams.hook.metrics import HookCounters, register_publisher
from streams.hook.sampling import Sampler
from streams.hook.sender import Item, LabelItem, PredictionItem, Sender
from streams.hook.wrap import Tracked
from streams.kafka.config import client_config
from streams.kafka.logs import LibrdkafkaLog, RateLimitedLog
from streams.process_cost import WorkerCost
from streams.settings import Settings, load_settings

__all__ = ["ShadowPublisher", "producer_config"]

log = logging.getLogger("streams.hook")
_names = itertools.count(1)

_new_item = tuple.__new__
"""Builds a :class:`PredictionItem` from a tuple of its fields in C: the class call goes
through the generated Python ``__new__`` and cost the request path ~250 ns more (a quarter
of ``publish()``). It does not check the field count; ``test_publisher`` does, field by field.
"""


def producer_config(
    settings: Settings,
    *,
    buffer_size: int,
    message_timeout_ms: int = 600_000,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """librdkafka settings of the hook's producer.

    - ``partitioner=murmur2_random``: the Java client's (and aiokafka's)
      partitioner, so a request id lands on the same partition of every co-partitioned
      topic whichever client wrote it (librdkafka's own default, ``consistent_random``,
      uses CRC32 and would send the same key elsewhere).
    - ``enable.idempotence`` with ``acks=all``: retries never duplicate or reorder.
    - ``message.timeout.ms`` (10 minutes by default): records wait out a broker outage.
    - ``queue.buffering.max.messages`` above the hook's capacity: librdkafka's queue never
      fills first, the hook's own count decides what is dropped.
    - ``linger.ms=50``: bigger batches, less CPU per record; nobody waits for these.
    """
    config = client_config(settings)
    config.update(
        {
            "client.id": "shadow-eval-hook",
            "partitioner": "murmur2_random",
            "enable.idempotence": True,
            "acks": "all",
            "message.timeout.ms": message_timeout_ms,
            "queue.buffering.max.messages": min(buffer_size + 1000, 2_147_483_647),
            "queue.buffering.max.kbytes": 2_097_151,
            "linger.ms": 50,
            "reconnect.backoff.max.ms": 1000,
            "delivery.report.only.error": True,
            "logger": LibrdkafkaLog(RateLimitedLog(logging.getLogger("streams.hook.librdkafka"))),
        }
    )
    config.update(overrides or {})
    return config


class ShadowPublisher:
    """Publishes a serving app's inputs, live predictions and labels to Kafka, safely.

    Calls return in microseconds and never raise: they hand a named tuple (a
    ``PredictionItem`` or ``LabelItem``) to a bounded in-process buffer and a background
    thread encodes and produces it. When Kafka is slow or down, up to ``buffer_size``
    records wait (for ``message_timeout_ms``); more are dropped and counted. See
    :attr:`counters`.

    Parameters
    ----------
    settings
        Broker, security and topic names; ``Settings()`` from ``SHADOW_*`` when ``None``.
    model, version
        Default model name and live version of :meth:`publish` and :meth:`label`.
    sample_rate
        Fraction of requests published, chosen by a hash of the request id (so a request's
        input, prediction and label are kept or left out together, in every process).
    buffer_size
        Most records in flight (accepted, not yet delivered or failed).
    block_timeout
        Seconds a call may wait for room when the buffer is full; 0 (default) never waits.
    message_timeout_ms
        How long a record may wait for Kafka before it counts as failed.
    allow, deny, hash_fields, hash_salt
        Privacy rules on feature names, see :class:`streams.hook.features.Privacy`.
    registry
        Prometheus registry of the ``shadow_hook_*`` metrics; the global one by default,
        ``False``-y registries are not possible, pass ``export_metrics=False`` instead.
    export_metrics
        Whether to register the metrics at all.
    producer_overrides
        Extra librdkafka settings, winning over :func:`producer_config`.
    interval
        Seconds the background thread sleeps when idle.
    log_interval
        At most one warning per kind of problem per this many seconds.
    close_at_exit
        Flush (up to 5 s) and close at interpreter exit.
    name
        The ``publisher`` label of the metrics; ``<model>-<n>`` by default.
    measure_cost
        Whether ``track()`` and ``shadow_predict`` also record the thread CPU time of each
        live prediction (``cpu_ms``, judged by the ``cpu_ms`` metric; two clock reads per
        call, ``bench/hook.py``), and live predictions carry this process's resident and
        peak memory (read by the background thread at most once a second).
    load_s, model_mb
        With ``measure_cost``: how long loading the live model took and its size in
        memory, if the app knows them (:func:`streams.process_cost.load_measured` measures
        both), so ``load_s`` and ``model_mb`` compare with the candidates'.

    Examples
    --------
    >>> publisher = ShadowPublisher(Settings(), model="churn", version="v1")  # doctest: +SKIP
    >>> rid = publisher.publish({"age": 41, "plan": "pro"}, 0.83, latency_ms=2.5)  # doctest: +SKIP
    >>> publisher.label(rid, 1.0)  # later, wherever the truth is learned  # doctest: +SKIP
    True
    >>> publisher.close()  # doctest: +SKIP
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        model: str,
        version: str = "",
        sample_rate: float = 1.0,
        buffer_size: int = 100_000,
        block_timeout: float = 0.0,
        message_timeout_ms: int = 600_000,
        allow: Collection[str] | None = None,
        deny: Collection[str] = (),
        hash_fields: Collection[str] = (),
        hash_salt: str | bytes = b"",
        registry: CollectorRegistry | None = None,
        export_metrics: bool = True,
        producer_overrides: Mapping[str, Any] | None = None,
        interval: float = 0.005,
        log_interval: float = 60.0,
        close_at_exit: bool = True,
        codec: Codec | None = None,
        name: str | None = None,
        measure_cost: bool = False,
        load_s: float | None = None,
        model_mb: float | None = None,
    ) -> None:
        self.settings = settings if settings is not None else load_settings()
        self._measure_cost = measure_cost
        self.model = model
        self.version = version
        self.name = name or f"{model}-{next(_names)}"
        self._sampler = Sampler(sample_rate)
        self._sample_all = self._sampler.rate >= 1.0
        self._buffer: InFlightBuffer[Item] = InFlightBuffer(buffer_size, block_timeout)
        self._ratelog = RateLimitedLog(log, log_interval)
        self._lock = threading.Lock()
        self._sampled_out = 0
        self._errors = 0
        self._closed = False
        config = producer_config(
            self.settings,
            buffer_size=buffer_size,
            message_timeout_ms=message_timeout_ms,
            overrides=producer_overrides,
        )
        self._sender = Sender(
            config,
            self.settings.topics,
            self._buffer,
            codec or codec_for(self.settings, register=False),
            Privacy(allow, deny, hash_fields, hash_salt),
            self._ratelog,
            interval=interval,
            on_error=self.record_error,
            name=f"shadow-hook-{self.name}",
            cost=WorkerCost(load_s=load_s, model_mb=model_mb) if measure_cost else None,
        )
        if export_metrics:
            register_publisher(self, registry)
        self._close_at_exit = close_at_exit
        if close_at_exit:
            atexit.register(self._exit)

    # -- request path --------------------------------------------------------------------
    def publish(
        self,
        features: Mapping[str, Any] | None = None,
        prediction: Any = None,
        *,
        request_id: str | None = None,
        model: str | None = None,
        version: str | None = None,
        probabilities: Mapping[Any, float] | None = None,
        latency_ms: float = 0.0,
        error: str | None = None,
        segments: Mapping[str, Any] | None = None,
        cpu_ms: float | None = None,
        numeric: Mapping[str, float] | None = None,
        categorical: Mapping[str, str] | None = None,
        extra: Any = None,
        timestamp_ms: int | None = None,
    ) -> str:
        """Publish one request's inputs and live prediction; returns its request id.

        ``features`` is split automatically (numbers numeric, strings categorical, the rest
        free-form ``extra``); ``numeric``, ``categorical`` and ``extra`` add explicit ones.
        Without any of them only the prediction is published. ``prediction`` is a float
        (regression) or a class label (int, str, bool, numpy integer; sent as text);
        ``None`` with ``error`` set when the live model failed. A new UUIDv7 is made when
        ``request_id`` is ``None``. Never raises.

        The request thread only queues references: ``features``, ``numeric``,
        ``categorical``, ``extra`` and ``probabilities`` are read later by the background
        thread, so pass objects the app does not modify afterwards (a fresh dict per
        request, the usual case). Segment tags are copied. ``cpu_ms``: the CPU time the live
        prediction took (``track()`` and ``shadow_predict`` measure it with ``measure_cost``).
        """
        rid = ""
        try:
            rid = uuid7() if request_id is None else str(request_id)
            records = 2 if features or numeric or categorical or extra is not None else 1
            if self._sample_all or self._sampler.keep(rid):
                item = _new_item(
                    PredictionItem,
                    (
                        rid,
                        time.time_ns() // 1_000_000 if timestamp_ms is None else timestamp_ms,
                        model or self.model,
                        self.version if version is None else version,
                        records,
                        features,
                        numeric,
                        categorical,
                        extra,
                        prediction,
                        probabilities,
                        latency_ms,
                        error,
                        dict(segments) if segments else None,
                        cpu_ms,
                    ),
                )
                self._buffer.offer(item, records)
            else:
                self._count_sampled_out(records)
        except Exception as exc:
            self.record_error("publish()", exc)
        return rid

    def label(
        self,
        request_id: str,
        value: Any,
        *,
        model: str | None = None,
        timestamp_ms: int | None = None,
    ) -> bool:
        """Publish the ground truth of ``request_id``; whether it was accepted.

        The same sampling rule as :meth:`publish` applies, so labels of requests that were
        not published are not published either. Never raises.
        """
        try:
            rid = str(request_id)
            if not self._sampler.keep(rid):
                self._count_sampled_out(1)
                return False
            ts = time.time_ns() // 1_000_000 if timestamp_ms is None else timestamp_ms
            return self._buffer.offer(LabelItem(rid, ts, model or self.model, value), 1)
        except Exception as exc:
            self.record_error("label()", exc)
            return False

    def track(
        self,
        features: Mapping[str, Any] | None = None,
        *,
        request_id: str | None = None,
        model: str | None = None,
        version: str | None = None,
        segments: Mapping[str, Any] | None = None,
    ) -> Tracked:
        """A context manager timing one prediction; see :class:`streams.hook.wrap.Tracked`."""
        return Tracked(
            self, features, request_id=request_id, model=model, version=version, segments=segments
        )

    @property
    def measure_cost(self) -> bool:
        """Whether timing records the live prediction's thread CPU time."""
        return self._measure_cost

    def sampled(self, request_id: str) -> bool:
        """Whether ``request_id`` is among the sampled (published) requests."""
        return self._sampler.keep(request_id)

    # -- state ---------------------------------------------------------------------------
    @property
    def counters(self) -> HookCounters:
        """A snapshot of the record counts (see :class:`HookCounters`)."""
        sender, buffer = self._sender, self._buffer
        return HookCounters(
            published=buffer.published,
            delivered=sender.delivered,
            dropped=buffer.dropped,
            failed=sender.failed,
            unencodable=sender.unencodable,
            too_large=sender.too_large,
            sampled_out=self._sampled_out,
            errors=self._errors,
            in_flight=buffer.in_flight,
        )

    def flush(self, timeout: float = 10.0) -> int:
        """Wait up to ``timeout`` s for every accepted record to be settled; how many remain."""
        deadline = time.monotonic() + timeout
        while self._buffer.in_flight > 0 and self._sender.alive:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            time.sleep(min(0.005, remaining))
        return self._buffer.in_flight

    def close(self, timeout: float = 10.0) -> int:
        """Flush, stop the background thread and give up what is left (counted as failed).

        Returns the number of records that were not delivered in time. Later calls are
        counted as dropped. Calling it again does nothing.
        """
        with self._lock:
            if self._closed:
                return 0
            self._closed = True
        if self._close_at_exit:
            atexit.unregister(self._exit)
        deadline = time.monotonic() + timeout
        remaining = self.flush(timeout)
        self._buffer.close()
        self._sender.stop(max(deadline - time.monotonic(), 0.1))
        self._sender.abandon(max(deadline - time.monotonic(), 0.1))
        return remaining

    def _exit(self) -> None:
        self.close(timeout=5.0)

    def __enter__(self) -> ShadowPublisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ShadowPublisher(name={self.name!r}, bootstrap={self.settings.kafka_bootstrap!r})"

    # -- bookkeeping ---------------------------------------------------------------------
    def _count_sampled_out(self, records: int) -> None:
        with self._lock:
            self._sampled_out += records

    def record_error(self, where: str, exc: BaseException) -> None:
        """Count (``counters.errors``) and log (rate-limited) an error in hook or user code."""
        with self._lock:
            self._errors += 1
        self._ratelog.warning(
            f"error:{where}", "shadow hook: unexpected %s in %s: %s", type(exc).__name__, where, exc
        )
