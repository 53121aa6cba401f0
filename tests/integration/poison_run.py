"""One poisoned run end to end, and its account: shared by ``test_poison`` and
``bench/poison.py``.

A real shadow worker (in this process), a ``shadow-eval join`` process (both stages,
Prometheus on a free port) and ``shadow-eval alerts tail -f`` run while
:func:`~tests.integration.poison_traffic.serve_poisoned` serves the traffic; then
:func:`account` says, per topic, how many records are not accounted for by
``produced == processed + dead-lettered + counted``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer

from streams.broker.config import free_port
from streams.codec import Codec
from streams.join.experiments import ExperimentsFile
from streams.join.judge import Judge
from streams.kafka.config import client_config
from streams.records import DeadLetter, JoinEvent, JoinKind, MetricsSnapshot, Prediction, Role
from streams.settings import Settings
from streams.worker import ModelAdapter, ShadowWorker, WorkerConfig
from streams.worker.metrics import WorkerMetrics
from tests.integration.join_helpers import REPO, Expected, JoinProcess, Outputs
from tests.integration.poison_traffic import (
    EXPERIMENTS_TOML,
    Plan,
    poisoned_worse,
    serve_poisoned,
)


@dataclass
class PoisonRun:
    """What a poisoned run left behind."""

    plan: Plan
    worker: WorkerMetrics
    join_metrics: dict[str, float]
    letters: Counter[tuple[str, str, str]]
    snapshot: MetricsSnapshot
    tail_output: str
    crashes: list[str]
    """Components that were not running at the end (and why)."""
    seconds: float


def clean_verdict(plan: Plan) -> str:
    """The verdict the pure core gives the same requests without any bad record."""
    judge = Judge(ExperimentsFile.parse(EXPERIMENTS_TOML))
    for request in plan.clean:
        live, rid, at = request.live, request.live.request_id, request.live.timestamp_ms
        candidate = Prediction(rid, "churn", "v2", Role.SHADOW, at,
                               str(request.candidates[0].value), None, 0.05)  # fmt: skip
        label = str(request.label.value)
        judge.apply(JoinEvent(JoinKind.PAIRED, "worse", rid, at, live, candidate))
        judge.apply(JoinEvent(JoinKind.LABELLED, "worse", rid, at, live, candidate, label=label))
    return judge.report("worse", plan.clean[-1].live.timestamp_ms).snapshot.decision


def dead_letters(settings: Settings) -> Counter[tuple[str, str, str]]:
    """Every dead letter by ``(component, source topic, error type)``."""
    codec = Codec()
    consumer = Consumer(client_config(settings, **{
        "group.id": f"dlq-{time.time_ns()}", "auto.offset.reset": "earliest",
    }))  # fmt: skip
    consumer.subscribe([settings.topics.dlq])
    found: Counter[tuple[str, str, str]] = Counter()
    idle = time.monotonic() + 10
    try:
        while time.monotonic() < idle:
            for message in consumer.consume(500, timeout=1.0):
                if message.error():
                    continue
                letter = codec.decode(message.value())
                assert isinstance(letter, DeadLetter)
                found[(letter.component, letter.source_topic, letter.error_type)] += 1
                idle = time.monotonic() + 3
    finally:
        consumer.close()
    return found


def scrape(port: int) -> dict[str, float]:
    """``name{labels}`` -> value of a Prometheus page on this host."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as page:
        text = page.read().decode()
    return {m[1]: float(m[2]) for m in re.finditer(r"^(\w+(?:\{[^}]*\})?) (\S+)$", text, re.M)}


def run_poisoned(
    settings: Settings, directory: Path, good: int, bad_every: int = 10, timeout: float = 150
) -> PoisonRun:
    """Serve ``good`` poisoned requests to a worker, a join process and an alerts tail."""
    started = time.monotonic()
    experiments = directory / "experiments.toml"
    experiments.write_text(EXPERIMENTS_TOML)
    port = free_port()
    join = JoinProcess(settings, experiments, directory / "join.log", "--metrics-port", str(port))
    env = {**os.environ, "SHADOW_KAFKA_BOOTSTRAP": settings.kafka_bootstrap}
    tail = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "alerts", "tail", "-f", "--json",
         "--topic-prefix", settings.topic_prefix],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    adapter = ModelAdapter(poisoned_worse, timeout_ms=5000)
    worker = ShadowWorker(settings, adapter, "v2", config=WorkerConfig(
        name="churn", only_model="churn", batch_size=500, batch_ms=20, status_every=0
    ))  # fmt: skip
    stop, crashes = threading.Event(), []

    def run_worker() -> None:
        try:
            worker.run(stop)
        except BaseException as exc:  # a crash: reported in the result
            crashes.append(f"worker: {exc!r}")

    worker_thread = threading.Thread(target=run_worker, daemon=True)
    worker_thread.start()
    outputs = Outputs(settings)
    try:
        plan = serve_poisoned(settings, good, bad_every)
        want = Expected(paired=plan.requests, labelled=plan.requests)
        outputs.wait_for(want, timeout=timeout, names=("worse",))
        deadline = time.monotonic() + 60
        while worker.metrics.consumed < plan.produced["inputs"] and time.monotonic() < deadline:
            time.sleep(0.2)
        join_metrics = scrape(port)
        letters = dead_letters(settings)
        outputs.poll(3.0)
        snapshot = outputs.snapshots["worse"]
        if not worker_thread.is_alive():
            crashes.append("worker: not running")
        if join.process.poll() is not None:
            crashes.append(f"join: exited {join.process.returncode}")
        if tail.poll() is not None:
            crashes.append(f"alerts tail: exited {tail.returncode}")
        if snapshot.timestamp_ms < time.time() * 1000 - 10_000:
            crashes.append("join: no fresh snapshot")
    finally:
        stop.set()
        worker_thread.join(30)
        join.stop()
        tail.terminate()
        tail_output = tail.communicate(timeout=30)[0].decode()
        outputs.close()
        adapter.close()
    return PoisonRun(plan, worker.metrics, join_metrics, letters, snapshot, tail_output,
                     crashes, time.monotonic() - started)  # fmt: skip


def account(run: PoisonRun, settings: Settings) -> dict[str, int]:
    """Per topic, records produced minus those processed, dead-lettered or counted
    (0 everywhere: every record accounted for), plus the counted-invalid mismatch."""
    topics, plan, letters, metrics = settings.topics, run.plan, run.letters, run.join_metrics
    counts = run.snapshot.counts
    paired, labelled = counts["paired"], counts["labelled"]

    def dead(component: str, topic: str) -> int:
        return sum(n for (c, t, _), n in letters.items() if c == component and t == topic)

    def events_in(topic: str) -> float:
        return metrics.get(f'shadow_join_events_in_total{{topic="{topic}"}}', 0.0)

    def outcome(name: str) -> float:
        return metrics.get(f'shadow_join_records_total{{outcome="{name}"}}', 0.0)

    w = run.worker
    shadow = w.produced + plan.produced["shadow"]
    invalid = {k: v for k, v in counts.items() if k.startswith("invalid:")}
    judged_events = plan.bad[("events", "undecodable")]
    return {
        "inputs": plan.produced["inputs"] - w.consumed
        + abs(w.consumed - (w.produced + dead("worker", topics.inputs) + w.skipped)),
        "live": int(plan.produced["live"] - paired - dead("join", topics.live_predictions)
                    - outcome("unknown_model"))
        + int(abs(plan.produced["live"] - events_in(topics.live_predictions))),
        "shadow": int(shadow - paired - dead("join", topics.shadow_predictions)
                      - outcome("unknown_version"))
        + int(abs(shadow - events_in(topics.shadow_predictions))),
        "labels": int(plan.produced["labels"] - labelled - dead("join", topics.ground_truth))
        + int(abs(plan.produced["labels"] - events_in(topics.ground_truth))),
        "events": judged_events - dead("join", topics.join_events),
        "invalid": sum(abs(invalid.get(k, 0) - v) for k, v in plan.invalid.items())
        + sum(v for k, v in invalid.items() if k not in plan.invalid),
    }  # fmt: skip
