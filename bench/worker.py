"""Throughput of the shadow worker against a raw consume-produce passthrough, same broker.

Preloads N ModelInput records, then alternates runs of

* **worker**: ``ShadowWorker`` with a trivial model (decode, validate, score, encode a
  Prediction, produce, store offsets after delivery, auto-commit), in-process;
* **passthrough**: plain confluent-kafka ``consume(num_messages=batch)`` -> produce the same
  bytes -> ``flush()`` -> ``commit()``, the cheapest at-least-once copy;

each over all N records with a fresh consumer group, timing from the first consumed
message to the last delivered one. Prints ONE JSON object with the medians and ``ratio``
(worker over passthrough). Starts a local broker unless ``SHADOW_KAFKA_BOOTSTRAP`` is set.

    python bench/worker.py --json [--inputs 200000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import broker_settings

from streams.codec import Codec
from streams.kafka.config import client_config
from streams.records import ModelInput
from streams.settings import Settings
from streams.worker import ShadowWorker, WorkerConfig

PRODUCER_TUNING = {
    "linger.ms": 5,
    "batch.num.messages": 10_000,
    "compression.type": "none",
    "queue.buffering.max.messages": 1_000_000,
    "partitioner": "murmur2_random",
}


def preload(settings: Settings, count: int) -> None:
    codec = Codec()
    producer = Producer(client_config(settings, **PRODUCER_TUNING))
    topic = settings.topics.inputs
    for i in range(count):
        request_id = f"req-{i:09d}"
        record = ModelInput(
            request_id,
            "churn",
            1_700_000_000_000 + i,
            numeric={f"f{j}": float(i % 97 + j) for j in range(8)},
            categorical={"plan": "pro" if i % 3 else "basic"},
            segments={"country": "DE" if i % 2 else "FR"},
        )
        while True:
            try:
                producer.produce(topic, codec.encode(record), request_id.encode())
                break
            except BufferError:
                producer.poll(0.1)
    producer.flush(60)


def trivial_model(features: dict[str, Any]) -> float:
    return 1.0


def run_worker(settings: Settings, count: int, batch_size: int) -> float:
    config = WorkerConfig(
        name="bench", group_id=f"bench-worker-{uuid.uuid4().hex[:8]}", batch_size=batch_size,
        status_every=0,
    )  # fmt: skip
    worker = ShadowWorker(settings, trivial_model, "v1", config=config)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    metrics, first = worker.metrics, 0.0
    deadline = time.monotonic() + 600
    while metrics.produced < count and time.monotonic() < deadline and thread.is_alive():
        if not first and metrics.consumed:
            first = time.perf_counter()
        time.sleep(0.002)
    elapsed = time.perf_counter() - first
    stop.set()
    thread.join()
    if metrics.produced < count:
        raise SystemExit(f"worker delivered {metrics.produced} of {count}")
    return count / elapsed


def run_passthrough(settings: Settings, count: int, batch_size: int, out_topic: str) -> float:
    consumer = Consumer(
        client_config(
            settings,
            **{
                "group.id": f"bench-passthrough-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            },
        )
    )
    producer = Producer(client_config(settings, **PRODUCER_TUNING))
    consumer.subscribe([settings.topics.inputs])
    done, first = 0, 0.0
    try:
        while done < count:
            messages = consumer.consume(batch_size, 0.05)
            if not messages:
                continue
            if not first:
                first = time.perf_counter()
            for message in messages:
                producer.produce(out_topic, message.value(), message.key())
            producer.flush()
            consumer.commit(asynchronous=False)
            done += len(messages)
        return count / (time.perf_counter() - first)
    finally:
        consumer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    parser.add_argument("--inputs", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with broker_settings() as (base, broker):
        settings = base.model_copy(update={"topic_prefix": f"bench{uuid.uuid4().hex[:6]}"})
        out_topic = f"{settings.topic_prefix}.passthrough"
        admin = AdminClient(client_config(settings))
        names = [*settings.topics.all, out_topic]
        new = [NewTopic(n, settings.partitions, settings.replication_factor) for n in names]
        for future in admin.create_topics(new).values():
            future.result(30)
        started = time.perf_counter()
        preload(settings, args.inputs)
        preload_s = time.perf_counter() - started
        worker_runs: list[float] = []
        passthrough_runs: list[float] = []
        for _ in range(args.rounds):
            passthrough_runs.append(
                run_passthrough(settings, args.inputs, args.batch_size, out_topic)
            )
            worker_runs.append(run_worker(settings, args.inputs, args.batch_size))
            if not args.json:
                print(f"passthrough {passthrough_runs[-1]:,.0f}/s  worker {worker_runs[-1]:,.0f}/s",
                      file=sys.stderr)  # fmt: skip
        for future in admin.delete_topics(names).values():
            future.result(30)
        del admin
    worker_median = statistics.median(worker_runs)
    passthrough_median = statistics.median(passthrough_runs)
    result = {
        "bench": "worker",
        "broker": broker,
        "inputs": args.inputs,
        "partitions": settings.partitions,
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "model": "trivial callable (features -> 1.0)",
        "worker_inputs_per_s": round(worker_median),
        "passthrough_inputs_per_s": round(passthrough_median),
        "ratio": round(worker_median / passthrough_median, 3),
        "worker_runs": [round(r) for r in worker_runs],
        "passthrough_runs": [round(r) for r in passthrough_runs],
        "preload_s": round(preload_s, 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
