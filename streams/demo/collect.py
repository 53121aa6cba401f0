"""The demo's recorder: reads the traffic, metrics and alerts topics while the demo runs.

One consumer thread, partitions *assigned* from the beginning (no group, nothing
committed). Predictions, labels and the inputs of the models whose experiments run
downstream decision and KPI functions go to a JSON Lines traffic log for ``shadow-eval
replay``; snapshots, alerts and verdicts are kept for the summary and the report.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from confluent_kafka import KafkaError, TopicPartition

from streams.codec import CodecError, codec_for
from streams.kafka.clients import CONFLUENT
from streams.kafka.config import reader_config
from streams.records import (
    Alert,
    GroundTruth,
    MetricsSnapshot,
    ModelInput,
    Prediction,
    Role,
    Verdict,
)
from streams.replay.traffic import TrafficWriter
from streams.settings import Settings

__all__ = ["Recorder"]

log = logging.getLogger(__name__)
OFFSET_BEGINNING = -2


class Recorder:
    """Collects what the demo's pipeline publishes, in a background thread.

    Parameters
    ----------
    settings
        Broker and topic names.
    traffic_path
        Where the JSON Lines traffic log goes.
    input_models
        Models whose inputs (``ModelInput`` records) are logged too: those whose
        experiments run decision or KPI functions, which the replay needs.

    Examples
    --------
    >>> with Recorder(settings, Path("reports/demo-traffic.jsonl")) as recorder:  # doctest: +SKIP
    ...     recorder.counts["shadow"]
    0
    """

    def __init__(
        self, settings: Settings, traffic_path: Path, input_models: Iterable[str] = ()
    ) -> None:
        self.settings = settings
        self.input_models = frozenset(input_models)
        self.codec = codec_for(settings, register=False)
        self.writer = TrafficWriter(traffic_path)
        self.snapshots: list[MetricsSnapshot] = []
        self.latest: dict[str, MetricsSnapshot] = {}
        self.alerts: list[Alert] = []
        self.verdicts: list[Verdict] = []
        self.predictions: list[Prediction] = []
        self.counts: Counter[str] = Counter()
        self._stop = threading.Event()
        self._consumer = CONFLUENT.consumer(
            reader_config(settings, "demo-recorder", overrides={"enable.partition.eof": False})
        )
        topics = settings.topics
        names = [
            *([topics.inputs] if self.input_models else []),
            topics.live_predictions,
            topics.shadow_predictions,
            topics.ground_truth,
            topics.metrics,
            topics.alerts,
        ]
        metadata = self._consumer.list_topics(timeout=10)
        self._consumer.assign(
            [
                TopicPartition(name, partition, OFFSET_BEGINNING)
                for name in names
                for partition in metadata.topics[name].partitions
            ]
        )
        self._thread = threading.Thread(target=self._run, name="demo-recorder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for message in self._consumer.consume(500, timeout=0.2):
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        log.warning("demo recorder: %s", error.str())
                    continue
                try:
                    record = self.codec.decode(message.value())
                except CodecError as exc:
                    log.warning("demo recorder: skipping a record: %s", exc)
                    continue
                self._keep(record)

    def _keep(self, record: object) -> None:
        if isinstance(record, Prediction):
            self.writer.write(record)
            self.predictions.append(record)
            self.counts["live" if record.role is Role.LIVE else "shadow"] += 1
        elif isinstance(record, GroundTruth):
            self.writer.write(record)
            self.counts["labels"] += 1
        elif isinstance(record, ModelInput):
            if record.model in self.input_models:
                self.writer.write(record)
                self.counts["inputs"] += 1
        elif isinstance(record, MetricsSnapshot):
            self.snapshots.append(record)
            self.latest[record.experiment] = record
        elif isinstance(record, Alert):
            self.alerts.append(record)
        elif isinstance(record, Verdict):
            self.verdicts.append(record)

    def total(self, count: str) -> int:
        """Sum of ``count`` (e.g. ``"paired"``) over the latest snapshot of each experiment."""
        return sum(int(s.counts.get(count, 0)) for s in list(self.latest.values()))

    def close(self) -> None:
        """Stop the thread, close the consumer and the traffic log."""
        self._stop.set()
        self._thread.join(10)
        self._consumer.close()
        self.writer.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
