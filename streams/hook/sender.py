"""The hook's background thread: builds records, encodes them, produces, serves reports.

It owns the confluent-kafka ``Producer``; no other thread touches it while it runs. Each
wake-up takes every pending item from the buffer at once, so the per-record cost is the
record itself (split, encode, ``produce``), not thread hand-offs.

Delivery reports come back for failures only (``delivery.report.only.error``): a Python
callback per delivered record would cost more than the rest of the hook's per-record
work. Delivered records are counted as *produced - failed - still queued* (``len(producer)``
counts every record librdkafka holds, reports not yet served included), which is exact
once the queue is empty and never over-counts before.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from confluent_kafka import KafkaError, KafkaException, Message

from streams.codec import Codec, EncodeError
from streams.hook.buffer import InFlightBuffer
from streams.hook.features import Privacy, split_features, to_label, to_probabilities
from streams.kafka.limits import ENVELOPE_BYTES
from streams.kafka.logs import RateLimitedLog
from streams.kafka.producer import ProducerWrapper
from streams.process_cost import WorkerCost
from streams.records import GroundTruth, ModelInput, Prediction, Role
from streams.settings import TopicNames

__all__ = ["Item", "LabelItem", "PredictionItem", "Sender"]

log = logging.getLogger("streams.hook")


class PredictionItem(NamedTuple):
    """A live prediction (and the request's inputs) as a request thread hands it over.

    The background thread builds the records from it (see ``Sender._emit``): the
    ``ModelInput`` when ``records`` is 2, then the live ``Prediction``. The mappings are
    the app's own objects, read only there.
    """

    request_id: str
    timestamp_ms: int
    model: str
    version: str
    records: int
    """2: a ModelInput and a Prediction; 1: the Prediction only (no inputs given)."""
    features: Mapping[str, Any] | None
    numeric: Mapping[str, float] | None
    categorical: Mapping[str, str] | None
    extra: Any
    value: Any
    probabilities: Mapping[Any, float] | None
    latency_ms: float
    error: str | None
    segments: dict[Any, Any] | None
    cpu_ms: float | None
    """Thread CPU time of the live call (``measure_cost``), or ``None``."""


class LabelItem(NamedTuple):
    """A request's ground truth as a request thread hands it over (one record)."""

    request_id: str
    timestamp_ms: int
    model: str
    value: Any

    @property
    def records(self) -> int:
        return 1


Item = PredictionItem | LabelItem
"""What the buffer between the request threads and the background thread holds."""


class Sender:
    """Runs the producer in a daemon thread until :meth:`stop`."""

    def __init__(
        self,
        producer_config: dict[str, Any],
        topics: TopicNames,
        buffer: InFlightBuffer[Item],
        codec: Codec,
        privacy: Privacy,
        ratelog: RateLimitedLog,
        *,
        interval: float,
        on_error: Callable[[str, BaseException], None],
        name: str,
        cost: WorkerCost | None = None,
    ) -> None:
        self.topics = topics
        self.cost = cost
        """The serving process's memory (and model load time, size) for live predictions."""
        self.buffer = buffer
        self.codec = codec
        self.privacy = privacy
        self.ratelog = ratelog
        self.interval = interval
        self.on_error = on_error
        self.produced = 0
        self.delivered = 0
        self.failed = 0
        self.unencodable = 0
        self.too_large = 0
        self.producer = ProducerWrapper(
            producer_config, ratelog=ratelog, on_failure=self._on_delivery, prefix="shadow hook: "
        )
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # -- thread ----------------------------------------------------------------------
    def _run(self) -> None:
        buffer, producer = self.buffer, self.producer
        while True:
            try:
                items = buffer.take()
                if items:
                    self._emit_all(items)
                producer.poll(0 if buffer.pending else self.interval)
                self._count_delivered()
            except Exception as exc:  # keep serving whatever happens
                self.on_error("background thread", exc)
                time.sleep(self.interval)
            if self._stopping.is_set() and not buffer.pending:
                return

    def _emit_all(self, items: list[Item]) -> None:
        emit = self._emit
        for item in items:
            try:
                emit(item)
            except Exception as exc:
                # A bug or a hostile object in one item: give up its records, go on.
                self.on_error("building a record", exc)
                self.buffer.drop(item.records)

    def _emit(self, item: Item) -> None:
        request_id = item.request_id
        if isinstance(item, LabelItem):
            label = to_label(item.value)  # None: the codec refuses it, counted unencodable
            truth = GroundTruth(request_id, item.model, item.timestamp_ms, label)  # type: ignore[arg-type]
            self._send(self.topics.ground_truth, request_id.encode(), truth)
            return
        key = request_id.encode()
        tags = _text_map(item.segments)
        if tags and self.privacy.active:
            tags = self.privacy.apply_segments(tags)
        if item.records == 2:
            record = self._model_input(item, tags)
            self._send(self.topics.inputs, key, record)
        value, latency_ms, probabilities = item.value, item.latency_ms, item.probabilities
        prediction = Prediction(
            request_id,
            item.model,
            item.version,
            Role.LIVE,
            item.timestamp_ms,
            value if type(value) is float else to_label(value),
            None if probabilities is None else to_probabilities(probabilities),
            latency_ms if type(latency_ms) is float else float(latency_ms),
            item.error,
            tags,
            None if item.cpu_ms is None else float(item.cpu_ms),
            *self._process_cost(),
        )
        self._send(self.topics.live_predictions, key, prediction)

    def _process_cost(
        self,
    ) -> tuple[str | None, float | None, float | None, float | None, float | None]:
        """(worker, rss, peak, load_s, model_mb) of live predictions (read on this thread)."""
        if self.cost is None:
            return None, None, None, None, None
        r = self.cost.sample()
        return r.worker, r.rss_mb, r.peak_mb, r.load_s, r.model_mb

    def _model_input(self, item: PredictionItem, tags: dict[str, str]) -> ModelInput:
        split = split_features(item.features)
        numeric, categorical, extra = item.numeric, item.categorical, item.extra
        if numeric:
            split.numeric.update(numeric)
        if categorical:
            split.categorical.update(categorical)
        loose = extra is not None and not isinstance(extra, Mapping)
        if isinstance(extra, Mapping):
            split.extra.update(extra)
        elif loose and split.extra:
            split.extra["extra"] = extra
        if self.privacy.active:
            split = self.privacy.apply(split)
        free: Any = split.extra or (extra if loose else None)
        return ModelInput(
            item.request_id,
            item.model,
            item.timestamp_ms,
            split.numeric,
            split.categorical,
            tags,
            free,
        )

    def _send(self, topic: str, key: bytes, record: Any) -> None:
        try:
            data = self.codec.encode(record)
        except EncodeError as exc:
            self.unencodable += 1
            self.buffer.settle(1)
            self.ratelog.warning("encode", "shadow hook: record not published: %s", exc)
            return
        if len(data) + len(key) + ENVELOPE_BYTES > self.producer.max_bytes:
            self.too_large += 1
            self.buffer.settle(1)
            self.ratelog.warning("size", "shadow hook: record of %d bytes to %s not published: "
                                 "over message.max.bytes", len(data), topic)  # fmt: skip
            return
        try:
            queued = self.producer.offer(topic, data, key)  # never waits
        except KafkaException as exc:
            self.failed += 1
            self.buffer.settle(1)
            self.ratelog.warning("produce", "shadow hook: produce to %s failed: %s", topic, exc)
            return
        if not queued:
            self.buffer.drop(1)
            self.ratelog.warning("queue", "shadow hook: producer queue full, record dropped")
            return
        self.produced += 1

    def _count_delivered(self) -> None:
        # Read len() before the counters: a report served in between only lowers the estimate.
        queued = len(self.producer)
        delivered = self.produced - self.failed - queued
        if delivered > self.delivered:
            self.buffer.settle(delivered - self.delivered)
            self.delivered = delivered

    # -- callbacks (run inside poll/flush on the thread that owns the producer) ---------
    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            return
        self.failed += 1
        self.buffer.settle(1)
        self.ratelog.warning(
            "delivery", "shadow hook: delivery to %s failed: %s", msg.topic(), err.str()
        )

    # -- lifecycle -----------------------------------------------------------------------
    def stop(self, timeout: float) -> None:
        """Let the thread hand over what is pending, then end it (within ``timeout`` s)."""
        self._stopping.set()
        self._thread.join(timeout)

    def abandon(self, timeout: float) -> None:
        """After :meth:`stop`: purge what Kafka has not acknowledged; it counts as failed."""
        if self._thread.is_alive():
            return  # still busy; it owns the producer
        try:
            self.producer.purge()
            self.producer.flush(timeout)
        except Exception as exc:
            self.on_error("closing the producer", exc)
        self._count_delivered()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


def _text_map(values: dict[Any, Any] | None) -> dict[str, str]:
    """Segment tags as text (the caller's copy is reused when it already is)."""
    if not values:
        return {}
    for k, v in values.items():
        if type(k) is not str or type(v) is not str:
            return {str(k): str(v) for k, v in values.items()}
    return values
