"""Offsets out of retention: each consuming component counts what it lost unread, alerts
it on the alerts topic (rule ``data_loss``) and goes on, never jumping silently.

One broker is enough (no cluster): ``delete_records`` moves a partition's log start past
a stopped group's committed offset at once, as retention does after an outage longer than
it. With every component stopped, requests are served, then their inputs (the worker's)
and labels (stage 1's) deleted; stage 1 alone then turns the unlabelled, unscored
requests into expiry events, which are deleted before stage 2 reads them (its checkpoint
lies below the new log start: "expired before they were judged"). Last, more events are
deleted unjudged and stage 2 starts without a checkpoint (another machine's data dir): it
counts them from its group's committed offset, once, also when it restarts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client import CollectorRegistry

from streams.codec import codec_for
from streams.hook import ShadowPublisher
from streams.join.engine import JoinWorker
from streams.join.experiments import ExperimentsFile
from streams.kafka.config import client_config
from streams.kafka.offset_loss import LOSS_RULE
from streams.records import JoinEvent, JoinEventBatch, JoinKind
from streams.settings import Settings, load_settings
from streams.synthetic import CandidateSpec, classification_requests
from streams.topics import partition_of
from streams.worker import ShadowWorker
from streams.worker.config import WorkerConfig
from tests.integration import candidates
from tests.integration.helpers import admin_client, create_topics
from tests.integration.join_helpers import Expected, Outputs

SERVED, LOST = 90, 60
UNJUDGED = 25
"""Join event records written while stage 2 is stopped and deleted before it reads them."""
EXPERIMENTS = ExperimentsFile.parse("""
[join]
pair_ttl_s = 1.5
label_ttl_s = 2
expire_every_s = 0.5
snapshot_every_s = 0.5

[[experiments]]
name = "worse"
model = "churn"
live_version = "v1"
candidate = "v2"
task = "binary"
primary_metric = "correct"
""")
JOIN_GROUP = f"{EXPERIMENTS.join.app_id}-{{prefix}}"


def _serve(settings: Settings, n: int, seed: int) -> None:
    """``n`` requests through the hook: inputs, live prediction and label each."""
    requests = classification_requests(
        n, CandidateSpec("v1", 0.9), [CandidateSpec("v2", 0.7)], seed=seed
    )
    with ShadowPublisher(
        settings, model="churn", version="v1", export_metrics=False,
        close_at_exit=False, registry=CollectorRegistry(),
    ) as hook:  # fmt: skip
        for request in requests:
            live = request.live
            hidden = {"_live": str(live.value), "_worse": str(request.candidates[0].value)}
            hook.publish({**request.input.numeric, **hidden}, live.value,
                         request_id=live.request_id, probabilities=live.probabilities,
                         latency_ms=candidates.LIVE_LATENCY_MS)  # fmt: skip
            hook.label(live.request_id, str(request.label.value))
        assert hook.flush(30) == 0


@contextmanager
def _running(
    settings: Settings, data_dir: Path, *stages: str
) -> Iterator[tuple[JoinWorker, ShadowWorker | None]]:
    """A shadow worker (unless only stage 2 runs) and a join worker, in threads."""
    join = JoinWorker(settings, EXPERIMENTS, stages=stages, data_dir=data_dir)
    threads = [threading.Thread(target=join.run, args=(False,), daemon=True)]
    stop = threading.Event()
    worker = None
    if stages != ("judge",):
        config = WorkerConfig(name="churn", only_model="churn", batch_ms=20, status_every=0)
        worker = ShadowWorker(settings, candidates.worse, "v2", config=config)
        threads.append(threading.Thread(target=worker.run, args=(stop,), daemon=True))
    for thread in threads:
        thread.start()
    try:
        yield join, worker
    finally:
        join.stop()
        stop.set()
        for thread in threads:
            thread.join(60)


def _lost(join: JoinWorker, topic: str) -> float:
    return join.metrics.registry.get_sample_value("shadow_join_lost_total", {"topic": topic}) or 0


def _wait(condition: Callable[[], bool], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _write_events(settings: Settings, experiment: str, n: int) -> None:
    """``n`` join-event records of ``experiment``, one expiry event each, on its partition
    (as stage 1 writes them, without its transaction markers: one offset per record)."""
    codec = codec_for(settings, register=False)
    partition = partition_of(experiment.encode(), settings.partitions)
    producer = Producer(client_config(settings, acks="all"))
    for i in range(n):
        event = JoinEvent(JoinKind.EXPIRED, experiment, f"unjudged-{i}", 0, None, None,
                          reason="no_label")  # fmt: skip
        producer.produce(settings.topics.join_events, codec.encode(JoinEventBatch((event,))),
                         experiment.encode(), partition=partition)  # fmt: skip
    assert producer.flush(30) == 0


def _delete_unread(settings: Settings, topic: str, group: str) -> int:
    """Delete every record of ``topic``; returns how many ``group`` had not read."""
    consumer = Consumer(client_config(settings, **{"group.id": group}))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        tps = [TopicPartition(topic, p) for p in partitions]
        committed = {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=10)}
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in partitions}  # fmt: skip
    finally:
        consumer.close()
    assert all(committed[p] >= 0 for p in partitions if ends[p]), (topic, committed)
    admin = admin_client(settings)
    deleted = admin.delete_records([TopicPartition(topic, p, end) for p, end in ends.items()])
    for future in deleted.values():
        future.result(timeout=10)
    return sum(max(ends[p] - committed[p], 0) for p in partitions if ends[p])


def test_offsets_out_of_retention_are_counted_and_alerted(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    settings = load_settings(
        kafka_bootstrap=kafka_settings.kafka_bootstrap,
        topic_prefix=kafka_settings.topic_prefix,
        partitions=3,
    )
    topics, data = settings.topics, tmp_path / "join"
    group = JOIN_GROUP.format(prefix=settings.topic_prefix)
    create_topics(settings)
    outputs = Outputs(settings)
    try:
        # 1. Everything runs (new groups start at the beginning): exact counts.
        with _running(settings, data, "pairs", "judge"):
            _serve(settings, SERVED, seed=1)
            outputs.wait_for(Expected(paired=SERVED, labelled=SERVED), names=("worse",))
        # 2. Everything stopped: requests served, their inputs and labels deleted.
        _serve(settings, LOST, seed=2)
        inputs_lost = _delete_unread(settings, topics.inputs, "shadow-worker.churn.v2")
        labels_lost = _delete_unread(settings, topics.ground_truth, group)
        assert inputs_lost == labels_lost == LOST
        # 3. The worker and stage 1 count and alert them; stage 1 expires the requests.
        with _running(settings, data, "pairs") as (join, worker):
            assert worker is not None
            live = topics.live_predictions
            _wait(lambda: worker.metrics.lost == LOST and _lost(join, topics.ground_truth) == LOST,
                  "the worker's and stage 1's counts")  # fmt: skip
            _wait(lambda: (join.metrics.registry.get_sample_value(
                "shadow_join_events_in_total", {"topic": live}) or 0) >= LOST
                and join.pairs.pending == 0, "stage 1 expiring the requests")  # fmt: skip
        # 4. Their expiry events deleted before stage 2 read them.
        events_lost = _delete_unread(settings, topics.join_events, f"{group}-judge")
        assert events_lost > 0
        with _running(settings, data, "judge") as (join, _):
            _wait(lambda: _lost(join, topics.join_events) == events_lost, "stage 2's count")
            outputs.wait_for(Expected(paired=SERVED, labelled=SERVED), names=("worse",))
        # 5. More events deleted before stage 2 read them; it starts without a checkpoint
        #    (another data dir): counted from its group's offset, and once only.
        _write_events(settings, "worse", UNJUDGED)
        unjudged_lost = _delete_unread(settings, topics.join_events, f"{group}-judge")
        assert unjudged_lost == UNJUDGED
        elsewhere = tmp_path / "elsewhere"
        with _running(settings, elsewhere, "judge") as (join, _):
            _wait(lambda: _lost(join, topics.join_events) == UNJUDGED, "stage 2's count, "
                  "without a checkpoint")  # fmt: skip
        with _running(settings, elsewhere, "judge") as (join, _):  # a restart: nothing new
            # it reports once its assignment (which counts any loss) is done
            _wait(lambda: "worse" in join.latest, "stage 2 restarted and reporting")
            assert _lost(join, topics.join_events) == 0
        outputs.poll(2.0)
        losses = [a for a in outputs.alerts if a.rule == LOSS_RULE]
        by_topic: dict[str, int] = {}
        for alert in losses:
            topic = next(t for t in (topics.inputs, topics.ground_truth, topics.join_events)
                         if f" of {t}[" in alert.message)  # fmt: skip
            by_topic[topic] = by_topic.get(topic, 0) + alert.result.n
            assert alert.severity == "critical" and alert.state.value == "FIRING"
        assert by_topic == {
            topics.inputs: LOST,
            topics.ground_truth: LOST,
            topics.join_events: events_lost + UNJUDGED,
        }, losses
        judged = [(a.experiment, a.result.n) for a in losses if topics.join_events in a.message]
        assert sorted(judged) == sorted([("worse", events_lost), ("worse", UNJUDGED)])  # once
        print(f"served={SERVED + LOST} paired={SERVED} inputs_lost={inputs_lost} "
              f"labels_lost={labels_lost} event_records_lost={events_lost} "
              f"unjudged_without_checkpoint={unjudged_lost} alerts={len(losses)}")  # fmt: skip
    finally:
        outputs.consumer.close()
