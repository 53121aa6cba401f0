"""Driving the join agent on the real broker: traffic through the hook and real workers,
join processes, and reading back the final metrics snapshots."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition

from streams.codec import CodecError, codec_for
from streams.hook import ShadowPublisher
from streams.kafka.config import client_config
from streams.records import Alert, MetricsSnapshot, Verdict
from streams.settings import Settings
from streams.synthetic import CandidateSpec, classification_requests
from streams.worker import ShadowWorker
from streams.worker.config import WorkerConfig
from tests.integration import candidates
from tests.unit.join.experiments_toml import CANDIDATES_TOML

REPO = Path(__file__).resolve().parents[2]

EXPERIMENTS = ("worse", "same", "slow")


@dataclass
class Expected:
    """What the final snapshot of every experiment must count, from what was produced."""

    paired: int = 0
    labelled: int = 0
    no_shadow: int = 0
    no_live: int = 0
    no_label: int = 0
    label_unknown: int = 0
    late_labels: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "paired": self.paired,
            "labelled": self.labelled,
            "expired_no_shadow": self.no_shadow,
            "expired_no_live": self.no_live,
            "expired_no_label": self.no_label,
            "expired_label_unknown": self.label_unknown,
        }


def write_experiments(
    directory: Path, pair_ttl: float = 20, label_ttl: float = 40, checkpoint_every: float = 60
) -> Path:
    path = directory / "experiments.toml"
    text = CANDIDATES_TOML.format(pair_ttl=pair_ttl, label_ttl=label_ttl)
    path.write_text(text.replace("[join]\n", f"[join]\ncheckpoint_every_s = {checkpoint_every}\n"))
    return path


@contextmanager
def running_workers(settings: Settings) -> Iterator[None]:
    """One real shadow worker per candidate, each in its own consumer group."""
    stop = threading.Event()
    threads = []
    for version, model in (
        ("v2", candidates.worse),
        ("v3", candidates.same),
        ("v4", candidates.slow),
    ):
        worker = ShadowWorker(
            settings,
            model,
            version,
            config=WorkerConfig(
                name="churn", only_model="churn", batch_size=200, batch_ms=20, status_every=0
            ),
        )
        thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
        thread.start()
        threads.append(thread)
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)


def serve_traffic(settings: Settings, n: int, seed: int = 11) -> Expected:
    """Publish ``n`` requests through the hook: inputs, live predictions and labels.

    Some requests are built to expire: a live prediction without inputs (no candidate
    ever sees it: no_shadow), a live version no experiment knows (its candidates have no
    live: no_live), no label (no_label), and labels for requests never served
    (label_unknown). Labels come after all predictions, shuffled, half of them late.
    """
    rng = random.Random(seed)
    expected = Expected()
    labels: list[tuple[str, str]] = []
    requests = classification_requests(
        n, CandidateSpec("v1", 0.90), [CandidateSpec("v2", 0.85)], seed=seed
    )
    with ShadowPublisher(
        settings, model="churn", version="v1", export_metrics=False, close_at_exit=False
    ) as hook:
        for request in requests:
            fate = rng.random()
            live = request.live
            hidden = {"_live": str(live.value), "_worse": str(request.candidates[0].value)}
            latency = candidates.LIVE_LATENCY_MS * rng.lognormvariate(0, 0.05)
            features = {**request.input.numeric, **request.input.categorical, **hidden}
            if fate < 0.03:
                hook.publish(
                    None,
                    live.value,
                    request_id=live.request_id,
                    latency_ms=latency,
                    segments=live.segments,
                )
                expected.no_shadow += 1
                labels.append((live.request_id, request.label.value))  # labelled, never paired
                continue
            if fate < 0.06:
                hook.publish(
                    features,
                    live.value,
                    request_id=live.request_id,
                    version="v0-canary",
                    latency_ms=latency,
                    segments=live.segments,
                )
                expected.no_live += 1
                continue
            hook.publish(
                features,
                live.value,
                request_id=live.request_id,
                probabilities=live.probabilities,
                latency_ms=latency,
                segments=live.segments,
            )
            expected.paired += 1
            if fate < 0.12:
                expected.no_label += 1
            else:
                labels.append((live.request_id, str(request.label.value)))
                expected.labelled += 1
        for _ in range(max(n // 50, 1)):
            hook.label(f"unknown-{rng.getrandbits(64):x}", "1")
            expected.label_unknown += 1
        assert hook.flush(30) == 0
        rng.shuffle(labels)
        half = len(labels) // 2
        for request_id, value in labels[:half]:
            hook.label(request_id, value)
        assert hook.flush(30) == 0
        time.sleep(3)  # the rest of the labels arrive late, after their pairs
        for request_id, value in labels[half:]:
            hook.label(request_id, value)
        assert hook.flush(30) == 0
        counters = hook.counters
        assert counters.dropped == 0 and counters.failed == 0
    return expected


def wait_for_predictions(settings: Settings, count: int, timeout: float = 120) -> None:
    """Until the shadow topic holds ``count`` predictions (every worker caught up)."""
    deadline = time.monotonic() + timeout
    consumer = Consumer(client_config(settings, **{"group.id": "probe"}))
    try:
        while time.monotonic() < deadline:
            metadata = consumer.list_topics(settings.topics.shadow_predictions, timeout=10)
            partitions = metadata.topics[settings.topics.shadow_predictions].partitions
            total = sum(
                consumer.get_watermark_offsets(
                    TopicPartition(settings.topics.shadow_predictions, p), timeout=10
                )[1]
                for p in partitions
            )
            if total >= count:
                return
            time.sleep(0.5)
    finally:
        consumer.close()
    raise AssertionError(f"workers produced fewer than {count} predictions in {timeout}s")


def copy_traffic(source: Settings, target: Settings) -> None:
    """Copy the per-request topics byte for byte, partition for partition."""
    codec_free_consumer = Consumer(
        client_config(
            source, **{"group.id": f"copy-{target.topic_prefix}", "enable.auto.commit": False}
        )
    )
    producer = Producer(client_config(target, **{"linger.ms": 10}))
    try:
        for topic, target_topic in zip(
            source.topics.per_request, target.topics.per_request, strict=True
        ):
            metadata = codec_free_consumer.list_topics(topic, timeout=10)
            for partition in metadata.topics[topic].partitions:
                low, high = codec_free_consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=10
                )
                if high <= low:
                    continue
                codec_free_consumer.assign([TopicPartition(topic, partition, low)])
                copied = 0
                while copied < high - low:
                    # Ask for no more than is left: consume() waits out its timeout for
                    # a batch it cannot fill.
                    wanted = min(1000, high - low - copied)
                    for message in codec_free_consumer.consume(wanted, timeout=5):
                        if message.error():
                            continue
                        producer.produce(
                            target_topic, message.value(), message.key(), partition=partition
                        )
                        copied += 1
                    producer.poll(0)
        assert producer.flush(30) == 0
    finally:
        codec_free_consumer.close()


class JoinProcess:
    """A ``shadow-eval join`` subprocess (its own process group, so kill -9 is real)."""

    def __init__(self, settings: Settings, experiments: Path, log: Path, *extra_args: str) -> None:
        self.log = log
        env = {**os.environ, "SHADOW_KAFKA_BOOTSTRAP": settings.kafka_bootstrap}
        if settings.kafka_config_file is not None:  # a secured broker's client.properties
            env["SHADOW_KAFKA_CONFIG_FILE"] = str(settings.kafka_config_file)
        if settings.schema_registry_url is not None:
            env["SHADOW_SCHEMA_REGISTRY_URL"] = settings.schema_registry_url
        self._file = log.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streams.cli",
                "join",
                "--experiments",
                str(experiments),
                "--topic-prefix",
                settings.topic_prefix,
                "--partitions",
                str(settings.partitions),
                "--data-dir",
                str(log.parent / "join-data"),
                "--log-level",
                "INFO",
                *extra_args,
            ],
            cwd=REPO,
            env=env,
            stdout=self._file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self._file.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        if not self._file.closed:
            self._file.close()


class Outputs:
    """Everything the join published: latest snapshot per experiment, alerts, verdicts."""

    def __init__(self, settings: Settings) -> None:
        self.codec = codec_for(settings, register=False)
        self.consumer = Consumer(
            client_config(
                settings,
                **{"group.id": f"outputs-{time.time_ns()}", "auto.offset.reset": "earliest"},
            )
        )
        self.consumer.subscribe([settings.topics.metrics, settings.topics.alerts])
        self.snapshots: dict[str, MetricsSnapshot] = {}
        self.alerts: list[Alert] = []
        self.verdicts: list[Verdict] = []

    def poll(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for message in self.consumer.consume(500, timeout=0.2):
                if message.error():
                    continue
                try:
                    record = self.codec.decode(message.value())
                except CodecError:  # bad records on the alerts topic (test_poison)
                    continue
                if isinstance(record, MetricsSnapshot):
                    self.snapshots[record.experiment] = record
                elif isinstance(record, Alert):
                    self.alerts.append(record)
                elif isinstance(record, Verdict):
                    self.verdicts.append(record)

    def counts(self, experiment: str) -> dict[str, int]:
        snapshot = self.snapshots.get(experiment)
        if snapshot is None:
            return {}
        return {
            k: v
            for k, v in snapshot.counts.items()
            if k != "duplicates_dropped" and not k.startswith(("errors:", "invalid:", "timeouts:"))
        }

    def wait_for(
        self, expected: Expected, timeout: float = 150, names: tuple[str, ...] = EXPERIMENTS
    ) -> None:
        deadline = time.monotonic() + timeout
        want = expected.counts()
        while time.monotonic() < deadline:
            self.poll(1.0)
            if all(self.counts(name) == want for name in names):
                self.poll(2.0)  # a couple more evaluations, for hysteresis
                return
        got = {name: self.counts(name) for name in names}
        raise AssertionError(f"final counts never matched: want {want}, got {got}")

    def close(self) -> None:
        self.consumer.close()
