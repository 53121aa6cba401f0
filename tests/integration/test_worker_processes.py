"""Shadow worker processes on the real broker: partition sharing, kill -9, SIGTERM.

The workers run as real ``shadow-eval worker`` subprocesses; the models below are
imported by them from this module.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from streams.codec import Codec
from streams.kafka.config import client_config
from streams.records import ModelInput, Prediction
from streams.settings import Settings
from streams.worker import ShadowWorker, WorkerConfig
from tests.integration.helpers import create_topics

REPO = Path(__file__).resolve().parents[2]
CODEC = Codec()


def pid_model(features: dict[str, Any]) -> str:
    """Answers with the worker's process id, so a test sees who scored what."""
    return str(os.getpid())


class WorkerProcess:
    """A ``shadow-eval worker`` subprocess whose log lines are collected."""

    def __init__(self, settings: Settings, version: str, *extra: str) -> None:
        script = Path(sys.executable).with_name("shadow-eval")
        command = (
            [str(script)]
            if script.exists()
            else [sys.executable, "-c", "from streams.cli import main; main()"]
        )
        command += [
            "worker", "--model", f"{__name__}:pid_model", "--version", version,
            "--name", "churn", "--bootstrap", settings.kafka_bootstrap,
            "--topic-prefix", settings.topic_prefix, "--session-timeout-ms", "6000",
            "--batch-ms", "20", "--status-every", "1", *extra,
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            assert self.proc.poll() is None, f"worker exited: {''.join(self.lines)}"
            assert time.monotonic() < deadline, f"no {text!r} in: {''.join(self.lines)}"
            time.sleep(0.05)

    def terminate(self, timeout: float = 30) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self.reader.join(5)
        return code

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self.reader.join(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.stop()


def produce_inputs(settings: Settings, ids: list[str], seconds: float) -> None:
    """Produce one input per id, spread over ``seconds``."""
    producer = Producer(client_config(settings, partitioner="murmur2_random", **{"linger.ms": 5}))
    chunk = max(len(ids) // 20, 1)
    for start in range(0, len(ids), chunk):
        for request_id in ids[start : start + chunk]:
            record = ModelInput(request_id, "churn", 0, {"a": 1.0}, segments={"s": "x"})
            producer.produce(settings.topics.inputs, CODEC.encode(record), request_id.encode())
        producer.poll(0)
        time.sleep(seconds / 20)
    assert producer.flush(30) == 0


def collect(settings: Settings, done: Any, timeout: float = 60) -> list[Prediction]:
    """Read shadow predictions from the start until ``done(predictions)`` holds."""
    topic = settings.topics.shadow_predictions
    consumer = Consumer(client_config(settings, **{"group.id": f"r-{uuid.uuid4().hex[:6]}"}))
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    found: list[Prediction] = []
    deadline = time.monotonic() + timeout
    try:
        while not done(found) and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.2):
                if message.error() is None:
                    found.append(CODEC.decode_as(Prediction, message.value()))
        # a little longer: a duplicate would arrive now
        for message in consumer.consume(1000, 1.0):
            if message.error() is None:
                found.append(CODEC.decode_as(Prediction, message.value()))
        return found
    finally:
        consumer.close()


def committed_everything(settings: Settings, group: str) -> bool:
    consumer = Consumer(client_config(settings, **{"group.id": group}))
    topic = settings.topics.inputs
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        ends = [consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in committed]
        return [max(tp.offset, 0) for tp in committed] == ends
    finally:
        consumer.close()


def test_two_processes_share_partitions_and_candidates_are_independent(
    kafka_settings: Settings, workers: list[WorkerProcess]
) -> None:
    create_topics(kafka_settings)
    workers += [WorkerProcess(kafka_settings, "v1") for _ in range(2)]
    for worker in workers:
        worker.wait_for("assigned")
    candidate2 = ShadowWorker(kafka_settings, lambda f: 2.0, "v2",
                              config=WorkerConfig(name="churn", status_every=0))  # fmt: skip
    stop = threading.Event()
    thread = threading.Thread(target=candidate2.run, args=(stop,))
    thread.start()
    ids = [f"req-{i:05d}" for i in range(2000)]
    try:
        produce_inputs(kafka_settings, ids, seconds=2.0)

        def complete(found: list[Prediction]) -> bool:
            versions = Counter(p.version for p in found)
            return versions["v1"] >= len(ids) and versions["v2"] >= len(ids)

        found = collect(kafka_settings, complete)
    finally:
        stop.set()
        thread.join(30)
    assert [worker.terminate() for worker in workers] == [0, 0]

    for version in ("v1", "v2"):
        counts = Counter(p.request_id for p in found if p.version == version)
        assert set(counts) == set(ids), version
        assert max(counts.values()) == 1, f"{version}: duplicates in a clean run"
    pids = Counter(p.value for p in found if p.version == "v1")
    assert set(pids) == {str(w.proc.pid) for w in workers}, pids
    assert all(p.error is None for p in found)
    assert committed_everything(kafka_settings, "shadow-worker.churn.v1")
    assert all(any("stopped: worker churn@v1" in line for line in w.lines) for w in workers)


def test_kill_9_survivor_takes_over(kafka_settings: Settings, workers: list[WorkerProcess]) -> None:
    create_topics(kafka_settings)
    workers += [WorkerProcess(kafka_settings, "v1") for _ in range(2)]
    for worker in workers:
        worker.wait_for("assigned")
    ids = [f"req-{i:05d}" for i in range(3000)]
    producer = threading.Thread(target=produce_inputs, args=(kafka_settings, ids, 3.0))
    producer.start()
    time.sleep(1.0)
    victim, survivor = workers
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait(10)
    producer.join(60)

    found = collect(kafka_settings, lambda f: {p.request_id for p in f} >= set(ids))
    assert {p.request_id for p in found} == set(ids)
    duplicates = len(found) - len({p.dedup_key for p in found})
    print(f"kill -9: {len(ids)} inputs, {len(found)} predictions, {duplicates} duplicates")
    assert len({p.dedup_key for p in found}) == len(ids)  # duplicates share a dedup_key
    # Only the victim's uncommitted work is redone: every duplicate is of a request the
    # victim scored, and there are no more of them than it scored.
    victim_scored = {p.request_id for p in found if p.value == str(victim.proc.pid)}
    counts = Counter(p.request_id for p in found)
    assert {r for r, n in counts.items() if n > 1} <= victim_scored
    assert max(counts.values()) <= 2 and duplicates <= len(victim_scored)
    assert str(survivor.proc.pid) in {p.value for p in found}
    assert survivor.terminate() == 0
    assert committed_everything(kafka_settings, "shadow-worker.churn.v1")
