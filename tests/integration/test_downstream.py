"""Downstream outcome shadowing on the real broker, and the same result through replay.

An ETA model feeds a planner that promises delivery slots. The candidate has the lower
mean absolute error but predicts early, so the planner promises slots it then misses.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from streams.codec import Codec
from streams.downstream.delivery import generate_deliveries, train_eta_models
from streams.hook import ShadowPublisher
from streams.join.experiments import load
from streams.kafka.config import client_config
from streams.records import AlertState, GroundTruth, ModelInput, Prediction
from streams.replay import read_traffic, write_jsonl
from streams.replay.run import replay
from streams.report.model import SEQUENTIAL_TESTS
from streams.settings import Settings, load_settings
from streams.topics import create_topics
from streams.worker import ShadowWorker
from streams.worker.config import WorkerConfig
from tests.integration.helpers import delete_topics
from tests.integration.join_helpers import Expected, JoinProcess, Outputs
from tests.unit.join import flaky
from tests.unit.join.flaky import DELIVERY_EXPERIMENT, FLAKY, REAL

ORDERS = 2000
NAMES = ("kpi-primary", "mae-primary", "flaky")


def experiments_file(directory: Path) -> Path:
    text = "[join]\npair_ttl_s = 60\nlabel_ttl_s = 120\nexpire_every_s = 1\nsnapshot_every_s = 1\n"
    for name, primary, functions in (
        ("kpi-primary", "late", REAL),
        ("mae-primary", "abs_error", REAL),
        ("flaky", "late", FLAKY),
    ):
        text += DELIVERY_EXPERIMENT.format(
            name=name, primary=primary, decision=functions[0], kpis=functions[1]
        )
    path = directory / "experiments.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def run(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, Outputs, Path]]:
    directory = tmp_path_factory.mktemp("downstream")
    settings = load_settings(
        kafka_bootstrap=kafka_bootstrap, topic_prefix=f"eta{time.time_ns() % 10**8}", partitions=3
    )
    create_topics(settings)
    live, candidate = train_eta_models(seed=0)
    stop = threading.Event()
    worker = ShadowWorker(
        settings, candidate, "v2", config=WorkerConfig(name="eta", only_model="eta", status_every=0)
    )
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    experiments = experiments_file(directory)
    join = JoinProcess(settings, experiments, directory / "join.log")
    outputs = Outputs(settings)
    labels = []
    try:
        with ShadowPublisher(
            settings, model="eta", version="v1", export_metrics=False, close_at_exit=False
        ) as hook:
            for i, order in enumerate(generate_deliveries(ORDERS, seed=7)):
                rid = f"order-{i:05d}"
                hook.publish(
                    order.features,
                    live.predict_one(order.features),
                    request_id=rid,
                    latency_ms=1.0,
                    segments={"city": order.city},
                )
                labels.append((rid, order.actual_minutes))
            random.Random(1).shuffle(labels)  # deliveries finish out of order
            for rid, minutes in labels:
                hook.label(rid, minutes)
            assert hook.flush(30) == 0
        outputs.wait_for(Expected(paired=ORDERS, labelled=ORDERS), timeout=180, names=NAMES)
        yield settings, outputs, experiments
    finally:
        stop.set()
        join.stop()
        outputs.close()
        thread.join(60)
        delete_topics(settings)


def sequential(outputs: Outputs, name: str, metric: str) -> tuple[float, float, float]:
    """The metric's anytime-valid result (msprt or asymptotic_cs) over all traffic."""
    result = next(
        r
        for r in outputs.snapshots[name].results
        if r.metric == metric and r.segment == "" and r.test in SEQUENTIAL_TESTS
    )
    assert result.effect is not None and result.ci_low is not None and result.ci_high is not None
    return result.effect, result.ci_low, result.ci_high


def test_better_on_mae_and_significantly_worse_on_late_deliveries(
    run: tuple[Settings, Outputs, Path],
) -> None:
    _, outputs, _ = run
    effect, _, high = sequential(outputs, "kpi-primary", "abs_error")
    assert effect < 0 and high < 0  # candidate minus live: lower error, interval excludes 0
    effect, low, _ = sequential(outputs, "kpi-primary", "late")
    assert effect > 0 and low > 0  # more late deliveries, interval excludes 0
    firing = {(a.experiment, a.rule) for a in outputs.alerts if a.state is AlertState.FIRING}
    assert ("kpi-primary", "later-deliveries") in firing
    assert ("kpi-primary", "better-mae") in firing


def test_the_verdict_follows_the_primary_metric(run: tuple[Settings, Outputs, Path]) -> None:
    _, outputs, _ = run
    assert outputs.snapshots["kpi-primary"].decision == "reject"
    assert outputs.snapshots["mae-primary"].decision == "promote"


def test_decisions_are_compared_without_labels(run: tuple[Settings, Outputs, Path]) -> None:
    _, outputs, _ = run
    tests = {
        r.test
        for r in outputs.snapshots["kpi-primary"].results
        if r.metric == "decision" and r.segment == ""
    }
    assert tests, "the decision distribution and agreement are reported"


def test_failing_functions_are_counted_for_exactly_their_requests(
    run: tuple[Settings, Outputs, Path],
) -> None:
    _, outputs, _ = run
    orders = list(generate_deliveries(ORDERS, seed=7))
    long_trips = sum(o.features["distance_km"] > flaky.LONG_TRIP_KM for o in orders)
    slow = sum(
        o.features["prep_minutes"] > flaky.SLOW_PREP_MINUTES
        and o.features["distance_km"] <= flaky.LONG_TRIP_KM
        for o in orders
    )
    counts = outputs.snapshots["flaky"].counts
    assert counts["errors:tests.unit.join.flaky:decide"] == long_trips
    assert counts["errors:tests.unit.join.flaky:kpis"] == slow
    assert counts["paired"] == counts["labelled"] == ORDERS
    assert outputs.snapshots["flaky"].decision == "reject"


def recorded_traffic(settings: Settings, path: Path) -> int:
    """Every record of the per-request topics, as a replayable JSON Lines file."""
    codec = Codec()
    consumer = Consumer(
        client_config(settings, **{"group.id": "recorder", "enable.auto.commit": False})
    )
    records: list[ModelInput | Prediction | GroundTruth] = []
    try:
        for topic in settings.topics.per_request:
            for partition in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=10
                )
                consumer.assign([TopicPartition(topic, partition, low)])
                while low < high:
                    # No more than is left: consume() waits out its timeout otherwise.
                    for message in consumer.consume(min(1000, high - low), timeout=5):
                        record = codec.decode(message.value())
                        assert isinstance(record, ModelInput | Prediction | GroundTruth)
                        records.append(record)
                        low = message.offset() + 1
    finally:
        consumer.close()
    return write_jsonl(path, records)


def test_replay_of_the_recorded_traffic_gives_the_same_result(
    run: tuple[Settings, Outputs, Path], tmp_path: Path
) -> None:
    settings, outputs, experiments = run
    path = tmp_path / "traffic.jsonl"
    assert recorded_traffic(settings, path) == 4 * ORDERS  # inputs, live, shadow, labels
    assert len(read_traffic([path])) == 4 * ORDERS
    result = replay([path], load(experiments))
    for name in NAMES:
        final = result.final(name)
        assert final.decision == outputs.snapshots[name].decision
        assert final.counts["paired"] == final.counts["labelled"] == ORDERS
    flaky_counts = result.final("flaky").counts
    for key, value in outputs.snapshots["flaky"].counts.items():
        if key.startswith("errors:"):
            assert flaky_counts[key] == value
