"""What each candidate costs, on the real broker: the hook times the live model's CPU, real
workers time theirs, the join judges ``cpu_ms`` with a relative guardrail, and
``shadow-eval status`` shows each worker's rate, CPU share and memory. Some live
predictions are written with Prediction schema version 1 and must still be joined."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from fastavro import schemaless_writer

from streams.codec import Codec, SchemaCatalogue
from streams.codec.convert import prediction_to_avro
from streams.hook import ShadowPublisher
from streams.kafka.config import client_config
from streams.records import MetricResult, MetricsSnapshot, ModelInput, Prediction, Role
from streams.settings import Settings
from streams.status import collect_status
from streams.worker import ShadowWorker
from streams.worker.config import WorkerConfig
from tests.integration.helpers import create_topics
from tests.integration.join_helpers import JoinProcess, Outputs

LIVE_CPU_S = 0.001
REQUESTS = 200
OLD_LIVE = 20
"""Live predictions written as Prediction version 1 (no cost fields: not in cpu_ms)."""
EXPERIMENTS = """
[join]
pair_ttl_s = 30
label_ttl_s = 60
expire_every_s = 1
snapshot_every_s = 1

[[experiments]]
name = "cost"
model = "churn"
live_version = "v1"
candidates = ["burn", "lean"]
task = "binary"
primary_metric = "correct"
guardrails = [{metric = "cpu_ms", margin = 0.5, relative = true}]

[[experiments.metrics]]  # CPU per prediction has rare spikes: bounds make its guardrail decide
name = "cpu_ms"
higher_is_better = false
bounds = [0, 10]
"""


def burn(seconds: float) -> None:
    """Busy for ``seconds`` of this thread's CPU time: the same CPU whatever the load."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def costly(features: dict[str, Any]) -> str:
    burn(4 * LIVE_CPU_S)
    return str(features["_live"])


def lean(features: dict[str, Any]) -> str:
    burn(LIVE_CPU_S)
    return str(features["_live"])


@contextmanager
def workers(settings: Settings) -> Iterator[None]:
    stop = threading.Event()
    threads = []
    for version, model in (("burn", costly), ("lean", lean)):
        config = WorkerConfig(name="churn", batch_size=50, batch_ms=20, status_every=0)
        worker = ShadowWorker(settings, model, version, config=config)
        threads.append(threading.Thread(target=worker.run, args=(stop,), daemon=True))
        threads[-1].start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)


def version_1_bytes(prediction: Prediction) -> bytes:
    """``prediction`` as Prediction schema version 1 wrote it (id 2, no cost fields)."""
    entry = SchemaCatalogue.default().versions("dev.shadoweval.Prediction")[0]
    body = BytesIO()
    names = {field["name"] for field in entry.raw["fields"]}
    datum = {k: v for k, v in prediction_to_avro(prediction).items() if k in names}
    schemaless_writer(body, entry.parsed, datum)
    return b"\x00" + entry.id.to_bytes(4, "big") + body.getvalue()


def serve(settings: Settings) -> None:
    """Live answers through the hook, its CPU timed; the first ones as version 1 records."""
    rng, codec = random.Random(5), Codec()
    # Keyed like the hook (Kafka's partitioner), so a request lands on one partition number.
    old = Producer(client_config(settings, partitioner="murmur2_random"))
    with ShadowPublisher(settings, model="churn", version="v1", export_metrics=False,
                         close_at_exit=False, measure_cost=True) as hook:  # fmt: skip
        for i in range(REQUESTS):
            rid, label = f"r{i}", rng.choice("01")
            answer = label if rng.random() < 0.85 else str(1 - int(label))
            features = {"x": float(i), "_live": answer}
            if i < OLD_LIVE:  # an app on an older version: its own input, a version 1 live
                now_ms = int(time.time() * 1000)
                record = ModelInput(rid, "churn", now_ms, {"x": float(i)}, {"_live": answer})
                old.produce(settings.topics.inputs, codec.encode(record), rid.encode())
                live = Prediction(rid, "churn", "v1", Role.LIVE, now_ms, answer)
                old.produce(settings.topics.live_predictions, version_1_bytes(live), rid.encode())
            else:
                with hook.track(features, request_id=rid) as tracked:
                    burn(LIVE_CPU_S)
                    tracked.prediction = answer
            hook.label(rid, label)
        assert hook.flush(30) == 0 and old.flush(30) == 0


def test_a_candidate_burning_4x_the_cpu_fails_its_cpu_guardrail_a_lean_one_does_not(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    create_topics(kafka_settings)
    experiments = tmp_path / "experiments.toml"
    experiments.write_text(EXPERIMENTS)
    join = JoinProcess(kafka_settings, experiments, tmp_path / "join.log")
    outputs = Outputs(kafka_settings)
    try:
        with workers(kafka_settings):
            serve(kafka_settings)
            final = wait_for_verdicts(outputs)
            status = collect_status(kafka_settings, timeout=10)
    finally:
        outputs.close()
        join.stop()
    burnt, leaned = final["cost/burn"], final["cost/lean"]
    assert burnt.counts["paired"] == leaned.counts["paired"] == REQUESTS  # version 1 too
    burnt_cpu, lean_cpu = (cpu_guardrail(snapshot) for snapshot in (burnt, leaned))
    assert burnt_cpu.n == lean_cpu.n == REQUESTS - OLD_LIVE
    assert burnt_cpu.ci_low is not None and burnt_cpu.live_value is not None
    assert burnt_cpu.ci_low / burnt_cpu.live_value > 1.0, burnt_cpu  # over +100%, surely
    assert burnt.decision == "reject" and "guardrail cpu_ms violated" in burnt.reason
    assert "cpu_ms violated" not in leaned.reason and leaned.decision != "reject", leaned.reason
    assert lean_cpu.ci_low is not None and lean_cpu.live_value is not None
    assert lean_cpu.ci_low / lean_cpu.live_value < 0.5, lean_cpu
    rows = {row.version: row for row in status.workers}
    assert set(rows) == {"burn", "lean"}
    for row in rows.values():
        assert row.predictions == REQUESTS and row.rss_mb is not None and row.rss_mb > 10
        assert row.cpu_share is not None and row.cpu_share > 0
    assert rows["burn"].cpu_share > rows["lean"].cpu_share  # type: ignore[operator]


def cpu_guardrail(snapshot: MetricsSnapshot) -> MetricResult:
    """The cpu_ms guardrail's interval (candidate - live) in ``snapshot``."""
    return next(r for r in snapshot.results if r.metric == "cpu_ms" and r.test == "guardrail")


def wait_for_verdicts(outputs: Outputs, timeout: float = 150) -> dict[str, MetricsSnapshot]:
    """The snapshots once both candidates have every request paired and labelled."""
    deadline = time.monotonic() + timeout
    names = ("cost/burn", "cost/lean")
    while time.monotonic() < deadline:
        outputs.poll(1.0)
        snaps = [outputs.snapshots.get(name) for name in names]
        if all(s is not None and s.counts.get("labelled", 0) >= REQUESTS for s in snaps):
            outputs.poll(1.5)  # the snapshot after the last events
            return {name: outputs.snapshots[name] for name in names}
    raise AssertionError(f"no final snapshots: {outputs.snapshots}")
