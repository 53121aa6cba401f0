"""Poison traffic on the real broker: every bad record is accounted for, nothing stops.

3,000 good requests go through the hook, a real shadow worker and a ``shadow-eval join``
process, with every kind of bad record mixed in on every input topic (inputs, live and
shadow predictions, labels, join events; the alerts topic too). At the end, per topic,
``produced == processed + dead-lettered + counted`` exactly; the worker, both join stages
and ``shadow-eval alerts tail`` still run; and the verdict on the clearly worse candidate
is the one the same requests without any bad record get.
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
from pathlib import Path

from confluent_kafka import Consumer

from streams.broker.config import free_port
from streams.codec import Codec
from streams.join.experiments import ExperimentsFile
from streams.join.offline import OfflineJoin
from streams.kafka.config import client_config
from streams.records import DeadLetter, GroundTruth, Prediction, Role
from streams.settings import Settings
from streams.topics import create_topics
from streams.worker import ModelAdapter, ShadowWorker, WorkerConfig
from tests.integration.join_helpers import REPO, Expected, JoinProcess, Outputs
from tests.integration.poison_traffic import EXPERIMENTS_TOML, Plan, poisoned_worse, serve_poisoned

GOOD = 3000


def clean_verdict(plan: Plan) -> str:
    """The verdict the pure core gives the same requests without any bad record."""
    join = OfflineJoin(ExperimentsFile.parse(EXPERIMENTS_TOML))
    for request in plan.clean:
        live, rid = request.live, request.live.request_id
        candidate = Prediction(rid, "churn", "v2", Role.SHADOW, live.timestamp_ms,
                               str(request.candidates[0].value), None, 0.05)  # fmt: skip
        label = GroundTruth(rid, "churn", live.timestamp_ms + 1, str(request.label.value))
        join.feed([live, candidate, label])
    join.finish()
    return join.judge.report("worse", join.now_ms).snapshot.decision


def dead_letters(settings: Settings) -> Counter[tuple[str, str, str]]:
    """Every dead letter by ``(component, source topic, error type)``."""
    codec = Codec()
    consumer = Consumer(client_config(settings, **{
        "group.id": f"dlq-{time.time_ns()}", "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
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
    """``name{labels}`` -> value of the join's Prometheus page."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as page:
        text = page.read().decode()
    return {m[1]: float(m[2]) for m in re.finditer(r"^(\w+(?:\{[^}]*\})?) (\S+)$", text, re.M)}


def test_every_bad_record_is_accounted_for_and_nothing_stops(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    settings = kafka_settings.model_copy(update={"partitions": 2})
    create_topics(settings)
    topics = settings.topics
    experiments = tmp_path / "experiments.toml"
    experiments.write_text(EXPERIMENTS_TOML)
    port = free_port()
    join = JoinProcess(settings, experiments, tmp_path / "join.log", "--metrics-port", str(port))
    env = {**os.environ, "SHADOW_KAFKA_BOOTSTRAP": settings.kafka_bootstrap}
    tail = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "alerts", "tail", "-f", "--json",
         "--topic-prefix", settings.topic_prefix],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    adapter = ModelAdapter(poisoned_worse, timeout_ms=5000)
    worker = ShadowWorker(settings, adapter, "v2", config=WorkerConfig(
        name="churn", only_model="churn", batch_size=200, batch_ms=20, status_every=0
    ))  # fmt: skip
    stop, failures = threading.Event(), []

    def run_worker() -> None:
        try:
            worker.run(stop)
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)

    worker_thread = threading.Thread(target=run_worker, daemon=True)
    worker_thread.start()
    outputs = Outputs(settings)
    try:
        plan = serve_poisoned(settings, GOOD)
        outputs.wait_for(Expected(paired=plan.requests, labelled=plan.requests),
                         timeout=150, names=("worse",))  # fmt: skip
        deadline = time.monotonic() + 60
        while worker.metrics.consumed < plan.produced["inputs"] and time.monotonic() < deadline:
            time.sleep(0.2)
        metrics = scrape(port)
        letters = dead_letters(settings)
        outputs.poll(3.0)
        snapshot = outputs.snapshots["worse"]
        # Still running, and still reporting after all of it.
        assert worker_thread.is_alive() and not failures, failures
        assert join.process.poll() is None and tail.poll() is None
        assert snapshot.timestamp_ms > time.time() * 1000 - 10_000
    finally:
        stop.set()
        worker_thread.join(30)
        join.stop()
        tail.terminate()
        tail_output = tail.communicate(timeout=30)[0].decode()
        outputs.close()
        adapter.close()

    bad = plan.bad
    # inputs: the worker consumed every record; each is a prediction or a dead letter.
    m = worker.metrics
    assert m.consumed == plan.produced["inputs"] == m.produced + m.dead_lettered + m.skipped
    assert m.produced == plan.requests and m.skipped == 0
    for kind in ("undecodable", "wrong_record_type", "nan_features", "too_large"):
        assert letters[("worker", topics.inputs, kind)] == bad[("inputs", kind)], kind
    assert m.dead_lettered == sum(n for (role, _), n in bad.items() if role == "inputs")
    assert m.errors == plan.candidate_errors
    # live, shadow, labels: stage 1 read every record; each was joined, dead-lettered or
    # counted (unknown model or version); invalid ones were joined and then counted.
    events_in = {
        role: metrics[f'shadow_join_events_in_total{{topic="{topic}"}}']
        for role, topic in (("live", topics.live_predictions),
                            ("shadow", topics.shadow_predictions),
                            ("labels", topics.ground_truth))
    }  # fmt: skip
    shadow_produced = m.produced + plan.produced["shadow"]
    assert events_in == {"live": plan.produced["live"], "shadow": shadow_produced,
                         "labels": plan.produced["labels"]}  # fmt: skip
    paired, labelled = snapshot.counts["paired"], snapshot.counts["labelled"]
    unknown_model = metrics['shadow_join_records_total{outcome="unknown_model"}']
    unknown_version = metrics['shadow_join_records_total{outcome="unknown_version"}']
    live_letters = (
        letters[("join", topics.live_predictions, "undecodable")]
        + letters[("join", topics.live_predictions, "too_large")]
    )
    assert plan.produced["live"] == paired + live_letters + unknown_model
    assert live_letters == bad[("live", "undecodable")] + bad[("live", "too_large")]
    assert unknown_model == bad[("live", "unknown_model")]
    shadow_letters = letters[("join", topics.shadow_predictions, "undecodable")]
    assert shadow_produced == paired + shadow_letters + unknown_version
    assert unknown_version == bad[("shadow", "unknown_version")]
    label_letters = letters[("join", topics.ground_truth, "undecodable")]
    assert plan.produced["labels"] == labelled + label_letters
    assert metrics['shadow_join_records_total{outcome="accepted"}'] == 2 * paired + labelled
    # join events: the undecodable ones are dead letters; the rest were judged.
    assert letters[("join", topics.join_events, "undecodable")] == bad[("events", "undecodable")]
    # Counted invalid, exactly, in the snapshot and on the Prometheus page.
    counted = {k: v for k, v in snapshot.counts.items() if k.startswith("invalid:")}
    assert counted == dict(plan.invalid)
    for key, count in plan.invalid.items():
        _, version, reason = key.split(":")
        labels = f'experiment="worse",reason="{reason}",version="{version}"'
        assert metrics[f"shadow_join_invalid_total{{{labels}}}"] == count, key
    # Nothing unaccounted: every dead letter is one the plan injected.
    assert sum(letters.values()) == sum(
        n
        for (role, kind), n in bad.items()
        if role != "alerts" and kind not in ("unknown_model", "unknown_version")
    )
    # The verdict: a clearly worse candidate is rejected, as without the bad records.
    assert snapshot.decision == clean_verdict(plan) == "reject"
    assert "reject" in tail_output.lower() and "Traceback" not in tail_output
    log = (tmp_path / "join.log").read_text()
    assert "Traceback" not in log, log[-3000:]
    print(f"\npoison: {plan.injected} bad records injected {dict(bad)}, counted invalid "
          f"{dict(plan.invalid)}, dead letters {sum(letters.values())}, candidate errors "
          f"{plan.candidate_errors}, restarts 0")  # fmt: skip
