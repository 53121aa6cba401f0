"""Join worker throughput against a raw decode-only consumer; memory per pending request.

    python bench/join.py --json

Both sides read the same preloaded topics (live and shadow predictions and labels) on the
same broker in the same run. The join's rate is end to end, through both stages: from its
own metrics snapshots, one a second (ten times the default rate), between the first
showing progress and the last taken before the total was reached, so neither start-up, the
group's first rebalance nor the idle time before the final snapshot is counted.

Baseline: a raw aiokafka consumer that decodes every record with fastavro, the Avro library
the codec is built on (``raw_decode_records_per_s``). ``ratio`` compares input records per
second; ``events_ratio`` compares the PAIRED + LABELLED events the join emits per second
with the raw consumer's records per second (the stricter reading: a request is 3 records
and 2 events). The join decodes with its own readers (``readers``: the C ones when built,
else Python; ``SHADOW_EVAL_PURE_PYTHON=1`` forces Python), which are part of what makes
it fast; ``raw_own_readers_records_per_s`` and ``ratio_vs_own_readers`` put it next to a
consumer that decodes with those same readers, a baseline that speeds up with every
speed-up of the join's decoding. ``stage1_records_per_s`` is stage 1 alone, from the
broker timestamps of the first and last join event.

I/O floor: a loop in one thread (on its own copy of the topics) does the join's Kafka work
and nothing else: it consumes the inputs as stage 1 does (same consumer settings, batches
of the same size), produces per batch one transaction of one event per prediction (in
records of up to ``MAX_EVENTS_BYTES``, as the join batches them), one changelog record per
request and the input offsets, and reads the events back as stage 2 does, without
decoding anything. ``io_floor_records_per_s`` is its input rate,
``io_floor_ratio`` that rate over the raw consumer's: an upper bound on ``ratio`` for any
join that publishes its events and changelog on this broker. ``ratio_of_floor`` is the
join's rate over the floor's (how much of that bound the join's CPU work leaves).

Memory: further join runs (memory:// and rocksdb:// state) get ``--pending`` requests whose
labels never come (a long label TTL), in ``--waves`` equal waves, and report the growth of
resident memory per pending request: the least-squares slope of resident memory after
each wave (the first wave pays the fixed costs). Resident memory is noisy (allocator
arenas, librdkafka buffers): each store runs ``--memory-runs`` times (fresh topics and
process each) and the median run is reported, with every run's figure in
``bytes_per_pending_request_runs``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from confluent_kafka import Consumer, Message, Producer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import broker_settings, rss_bytes

from streams.codec import Codec
from streams.codec.fastread import NATIVE_DECODERS
from streams.join.stage_judge import events_of
from streams.join.stage_pairs import (
    BATCH_SIZE,
    LIBRDKAFKA_LOGS,
    TRANSACTION_TIMEOUT_MS,
    event_chunks,
)
from streams.kafka import ProducerWrapper
from streams.kafka.config import base_config, client_config, group_config
from streams.records import MetricsSnapshot
from streams.settings import Settings
from streams.synthetic import CandidateSpec, classification_requests
from streams.topics import create_topics, partition_of

EXPERIMENTS = """
[join]
pair_ttl_s = 3600
label_ttl_s = 86400
expire_every_s = 5
snapshot_every_s = 1

[[experiments]]
name = "bench"
model = "churn"
live_version = "v1"
candidate = "v2"
task = "binary"
primary_metric = "correct"
"""
FLOOR_STATE_VALUE = bytes(60)
"""A changelog value of the order of a packed join slot."""
PRODUCER = {
    "linger.ms": 20,
    "batch.num.messages": 10_000,
    "partitioner": "murmur2_random",
    "queue.buffering.max.messages": 1_000_000,
}


def preload(settings: Settings, requests: int, labels: bool, seed: int) -> int:
    codec = Codec()
    producer = Producer(client_config(settings, **PRODUCER))
    topics = settings.topics
    count = 0
    for request in classification_requests(
        requests, CandidateSpec("v1", 0.9), [CandidateSpec("v2", 0.88)], seed=seed
    ):
        key = request.live.request_id.encode()
        producer.produce(topics.live_predictions, codec.encode(request.live), key)
        producer.produce(topics.shadow_predictions, codec.encode(request.candidates[0]), key)
        count += 2
        if labels:
            producer.produce(topics.ground_truth, codec.encode(request.label), key)
            count += 1
        producer.poll(0)
    producer.flush(60)
    return count


async def raw_rate(settings: Settings, records: int, codec: Codec) -> float:
    """Records/s of a plain aiokafka consumer that decodes every record of the topics."""
    topics = settings.topics
    consumer = AIOKafkaConsumer(
        topics.live_predictions,
        topics.shadow_predictions,
        topics.ground_truth,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"raw-{time.time_ns()}",
        auto_offset_reset="earliest",
        enable_auto_commit=True,
        max_poll_records=2000,
    )
    await consumer.start()
    try:
        seen = 0
        started: float | None = None
        while seen < records:
            batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
            for messages in batches.values():
                if started is None:
                    started = time.perf_counter()
                for message in messages:
                    codec.decode(message.value)
                seen += len(messages)
        assert started is not None
        return seen / (time.perf_counter() - started)
    finally:
        await consumer.stop()


def _floor_transaction(
    settings: Settings, producer: ProducerWrapper, consumer: Consumer, batch: list[Message]
) -> int:
    """One stage-1 transaction for ``batch``, without decoding it: an event per prediction
    (its own bytes, so of the size of a join event) in records of up to MAX_EVENTS_BYTES
    as the join sends them, a changelog record per request (at its label: the join writes
    at least one) and the batch's offsets. Returns the event records produced."""
    topics = settings.topics
    event_partition = partition_of(b"bench", settings.partitions)  # the join's mapping
    offsets: dict[tuple[str, int], int] = {}
    events: list[bytes] = []
    producer.client.begin_transaction()
    for message in batch:
        topic: str = message.topic()  # type: ignore[assignment]
        partition: int = message.partition()  # type: ignore[assignment]
        offsets[(topic, partition)] = message.offset() + 1  # type: ignore[operator]
        key: bytes = message.key()  # type: ignore[assignment]
        if topic == topics.ground_truth:
            producer.produce(topics.join_state, FLOOR_STATE_VALUE, key, partition)
        else:
            events.append(message.value())  # type: ignore[arg-type]
    records = 0
    for chunk in event_chunks(events):
        producer.produce(topics.join_events, b"".join(chunk), b"bench", event_partition)
        records += 1
    producer.client.send_offsets_to_transaction(
        [TopicPartition(t, p, o) for (t, p), o in offsets.items()],
        consumer.consumer_group_metadata(),
        30,
    )
    producer.client.commit_transaction(30)
    return records


def _valid(messages: list[Message]) -> list[Message]:
    """Records only: no partition-EOF events or other errors."""
    return [m for m in messages if m.error() is None]


def _floor_consumer(settings: Settings, group: str, topics: list[str]) -> Consumer:
    """A consumer with the join's settings, subscribed to ``topics``."""
    # But no 1 s pause once the prefetch queue is full (librdkafka's fetch.queue.backoff.ms):
    # the floor drains it fast enough to wait on it, the CPU-bound join never does.
    consumer = Consumer(
        group_config(settings, group, logs=LIBRDKAFKA_LOGS, overrides={"fetch.queue.backoff.ms": 0})
    )
    consumer.subscribe(topics)
    return consumer


def io_floor_rate(settings: Settings, records: int, timeout: float = 600) -> dict[str, float]:
    """Input records/s of the join's Kafka work without its CPU work, in one thread.

    Stage 1's consumer and transactional producer (same settings, batches of BATCH_SIZE)
    and stage 2's read-committed read-back of the events, alternated as the worker does,
    with nothing decoded or joined: an upper bound on ``ratio`` for any join that
    publishes its events and changelog on this broker. Timed from the first batch (after
    the group's first rebalance) until every input is consumed and every event record
    is read back.
    """
    topics, stamp = settings.topics, time.time_ns()
    inputs = _floor_consumer(
        settings,
        f"floor-{stamp}",
        [topics.live_predictions, topics.shadow_predictions, topics.ground_truth],
    )
    events = _floor_consumer(settings, f"floor-events-{stamp}", [topics.join_events])
    producer = ProducerWrapper(
        base_config(
            settings,
            logs=LIBRDKAFKA_LOGS,
            overrides={
                "transactional.id": f"floor-{stamp}",
                "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
                "linger.ms": 5,
                "batch.num.messages": 10_000,
                "queue.buffering.max.messages": 1_000_000,
            },
        )
    )
    producer.init_transactions(30)
    seen = read_back = written = 0
    started: float | None = None
    deadline = time.monotonic() + timeout
    try:
        while seen < records or read_back < written:
            if time.monotonic() > deadline:
                raise RuntimeError(f"I/O floor: {seen} records, {read_back} events in {timeout}s")
            batch = _valid(inputs.consume(BATCH_SIZE, 0.05)) if seen < records else []
            if batch:
                started = started or time.perf_counter()
                written += _floor_transaction(settings, producer, inputs, batch)
                seen += len(batch)
            # Stage 2's turn, without waiting when stage 1 had work (as the worker does).
            read_back += len(_valid(events.consume(BATCH_SIZE, 0 if batch else 0.05)))
    finally:
        inputs.close()
        events.close()
    assert started is not None
    elapsed = time.perf_counter() - started
    return {"records_per_s": records / elapsed, "measured_s": elapsed}


def start_join(
    settings: Settings, directory: Path, store: str = "memory://", stage: str = "both"
) -> subprocess.Popen[bytes]:
    directory.mkdir(parents=True, exist_ok=True)
    experiments = directory / "experiments.toml"
    experiments.write_text(EXPERIMENTS)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streams.cli",
            "join",
            "--experiments",
            str(experiments),
            "--bootstrap",
            settings.kafka_bootstrap,
            "--topic-prefix",
            settings.topic_prefix,
            "--partitions",
            str(settings.partitions),
            "--data-dir",
            str(directory / "state"),
            "--store",
            store,
            "--stage",
            stage,
        ],
        stdout=(directory / f"join-{stage}.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def snapshots(settings: Settings, until: Any, timeout: float) -> list[MetricsSnapshot]:
    """Metrics snapshots of the run until ``until(snapshot)`` holds for one."""
    codec = Codec()
    consumer = Consumer(
        client_config(
            settings, **{"group.id": f"bench-{time.time_ns()}", "auto.offset.reset": "earliest"}
        )
    )
    consumer.subscribe([settings.topics.metrics])
    seen: list[MetricsSnapshot] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for message in consumer.consume(100, timeout=0.5):
                if message.error():
                    continue
                snapshot = codec.decode_as(MetricsSnapshot, message.value())
                seen.append(snapshot)
                if until(snapshot):
                    return seen
    finally:
        consumer.close()
    raise RuntimeError(f"the join did not finish within {timeout}s; see its log")


def join_events_in(codec: Codec, message: Message) -> int:
    """How many join events a committed ``<prefix>.join.events`` record carries."""
    return len(events_of(codec.decode(message.value())))  # type: ignore[arg-type]


def event_time_span(settings: Settings, count: int, timeout: float = 60) -> float:
    """Seconds between the broker timestamps of the first join event and the
    ``count``-th."""
    codec = Codec()
    consumer = Consumer(
        client_config(
            settings,
            **{
                "group.id": f"bench-{time.time_ns()}",
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
            },
        )
    )
    consumer.subscribe([settings.topics.join_events])
    stamps: list[int] = []
    seen = 0
    deadline = time.monotonic() + timeout
    try:
        while seen < count and time.monotonic() < deadline:
            for message in consumer.consume(10_000, timeout=0.5):
                if message.error() is None:
                    stamps.append(message.timestamp()[1])
                    seen += join_events_in(codec, message)
    finally:
        consumer.close()
    return (max(stamps) - min(stamps)) / 1000


def join_rate(
    settings: Settings, requests: int, directory: Path, stages: tuple[str, ...] = ("both",)
) -> dict[str, float]:
    """End-to-end rate of one join worker (``("both",)``: both stages in one process) or of
    its two stages as two processes (``("pairs", "judge")``)."""
    processes = [start_join(settings, directory, stage=stage) for stage in stages]
    try:
        seen = snapshots(settings, lambda s: s.counts["labelled"] >= requests, timeout=900)
    finally:
        for process in processes:
            stop(process)
    progress = [s for s in seen if s.counts["paired"] > 0]
    # The final snapshot can come up to a second after the last event; snapshots taken
    # while it was busy time the work alone (unless the run was too short for two).
    busy = [s for s in progress if s.counts["labelled"] < requests]
    started, last = (busy[0], busy[-1]) if len(busy) >= 2 else (progress[0], progress[-1])
    elapsed = (last.timestamp_ms - started.timestamp_ms) / 1000
    events = (last.counts["paired"] + last.counts["labelled"]) - (
        started.counts["paired"] + started.counts["labelled"]
    )
    # Input records behind those events: 3 per request (live, shadow, label).
    records = 3 * (last.counts["labelled"] - started.counts["labelled"])
    stage1_span = event_time_span(settings, 2 * requests)
    return {
        "events_per_s": events / elapsed,
        "records_per_s": records / elapsed,
        "measured_s": elapsed,
        "stage1_records_per_s": 3 * requests / stage1_span,
    }


class EventCounter:
    """Counts the committed join events of a run as they arrive."""

    def __init__(self, settings: Settings) -> None:
        self.consumer = Consumer(
            client_config(
                settings,
                **{
                    "group.id": f"bench-{time.time_ns()}",
                    "auto.offset.reset": "earliest",
                    "isolation.level": "read_committed",
                },
            )
        )
        self.consumer.subscribe([settings.topics.join_events])
        self.codec = Codec()
        self.count = 0

    def wait_for(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.count < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.count} join events after {timeout}s, not {count}")
            messages = self.consumer.consume(10_000, timeout=0.5)
            self.count += sum(join_events_in(self.codec, m) for m in messages if not m.error())

    def close(self) -> None:
        self.consumer.close()


def pending_memory(
    settings: Settings, requests: int, directory: Path, store: str, waves: int
) -> dict[str, float]:
    """RSS growth of a join per paired request waiting for its label.

    ``waves`` equal waves of requests; resident memory is read after each. The first wave
    brings the process to its steady state (buffers, the bounded test windows); the cost
    of a pending request is the slope of resident memory over the waves (least squares),
    so memory a wave frees and the next one reuses, or one table resize, cannot make a
    single difference of two readings say much more or less than it should.
    """
    # Stage 1 alone: it holds the waiting requests (stage 2's memory is its test windows,
    # bounded by the experiment's window setting, whatever is pending).
    process = start_join(settings, directory, store, stage="pairs")
    per_wave = requests // waves
    events = EventCounter(settings)
    try:
        rss = []
        for wave in range(1, waves + 1):
            preload(settings, per_wave, labels=False, seed=98 + wave)
            events.wait_for(wave * per_wave, timeout=900)  # every request paired, label pending
            time.sleep(2)  # let the changelog producer drain
            rss.append(rss_bytes(process.pid))
    finally:
        events.close()
        stop(process)
    pending = [wave * per_wave for wave in range(1, waves + 1)]
    return {
        "rss_first_wave_mb": rss[0] / 2**20,
        "rss_last_wave_mb": rss[-1] / 2**20,
        "bytes_per_pending_request": statistics.linear_regression(pending, rss).slope,
    }


def median_pending_memory(
    base: Settings, args: argparse.Namespace, directory: Path, store: str
) -> dict[str, Any]:
    """:func:`pending_memory` over ``args.memory_runs`` runs (fresh topics and process
    each): the run with the median growth, and every run's bytes per request."""
    runs = []
    for run in range(args.memory_runs):
        settings = base.model_copy(
            update={"topic_prefix": f"bm{time.time_ns() % 10**8}", "partitions": args.partitions}
        )
        create_topics(settings)
        runs.append(pending_memory(settings, args.pending, directory / str(run), store, args.waves))
    runs.sort(key=lambda m: m["bytes_per_pending_request"])
    median = runs[len(runs) // 2]
    return {**median, "runs": [round(m["bytes_per_pending_request"]) for m in runs]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--requests", type=int, default=150_000)
    parser.add_argument("--pending", type=int, default=200_000, help="over --waves waves")
    parser.add_argument("--waves", type=int, default=5, help="memory read after each")
    parser.add_argument(
        "--memory-runs", type=int, default=3, help="memory runs per store (median reported)"
    )
    parser.add_argument("--partitions", type=int, default=3)
    args = parser.parse_args()
    with broker_settings() as (base, broker), tempfile.TemporaryDirectory() as tmp:
        run = base.model_copy(
            update={"topic_prefix": f"bj{time.time_ns() % 10**8}", "partitions": args.partitions}
        )
        create_topics(run)
        records = preload(run, args.requests, labels=True, seed=1)
        raw = asyncio.run(raw_rate(run, records, Codec(fast=False)))
        raw_own_readers = asyncio.run(raw_rate(run, records, Codec()))
        # Its own topics: the join's rate run writes events and changelog to its prefix.
        floor_run = base.model_copy(
            update={"topic_prefix": f"bf{time.time_ns() % 10**8}", "partitions": args.partitions}
        )
        create_topics(floor_run)
        preload(floor_run, args.requests, labels=True, seed=1)
        floor = io_floor_rate(floor_run, records)
        join = join_rate(run, args.requests, Path(tmp) / "rate")
        split_run = base.model_copy(
            update={"topic_prefix": f"bs{time.time_ns() % 10**8}", "partitions": args.partitions}
        )
        create_topics(split_run)
        preload(split_run, args.requests, labels=True, seed=1)
        split = join_rate(split_run, args.requests, Path(tmp) / "split", ("pairs", "judge"))
        memory = {
            store: median_pending_memory(base, args, Path(tmp) / store.rstrip(":/"), store)
            for store in ("memory://", "rocksdb://")
        }
    result = {
        "bench": "join",
        "broker": broker,
        "requests": args.requests,
        "input_records": records,
        "partitions": args.partitions,
        "join_records_per_s": round(join["records_per_s"]),
        "join_events_per_s": round(join["events_per_s"]),
        "raw_decode_records_per_s": round(raw),
        "ratio": round(join["records_per_s"] / raw, 3),
        "events_ratio": round(join["events_per_s"] / raw, 3),
        "readers": "c" if NATIVE_DECODERS else "python",
        "raw_own_readers_records_per_s": round(raw_own_readers),
        "ratio_vs_own_readers": round(join["records_per_s"] / raw_own_readers, 3),
        "events_ratio_vs_own_readers": round(join["events_per_s"] / raw_own_readers, 3),
        "io_floor_records_per_s": round(floor["records_per_s"]),
        "io_floor_ratio": round(floor["records_per_s"] / raw, 3),
        "ratio_of_floor": round(join["records_per_s"] / floor["records_per_s"], 3),
        "stage1_records_per_s": round(join["stage1_records_per_s"]),
        "join_measured_s": round(join["measured_s"], 1),
        "split_records_per_s": round(split["records_per_s"]),
        "split_ratio": round(split["records_per_s"] / raw, 3),
        "split_events_ratio": round(split["events_per_s"] / raw, 3),
        "pending_requests": args.pending,
        "bytes_per_pending_request": round(memory["memory://"]["bytes_per_pending_request"]),
        "bytes_per_pending_request_rocksdb": round(
            memory["rocksdb://"]["bytes_per_pending_request"]
        ),
        "bytes_per_pending_request_runs": {store: m["runs"] for store, m in memory.items()},
        "rss_mb": {
            store: [round(m["rss_first_wave_mb"], 1), round(m["rss_last_wave_mb"], 1)]
            for store, m in memory.items()
        },
    }
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
