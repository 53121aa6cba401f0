"""Benchmark the producer hook against a hand-written produce() on a real broker.

``python bench/hook.py --json`` prints one JSON object. Per round, each side makes
``--calls`` calls with the same payloads (a model input of 20 numeric and 5 categorical
features, and a regression prediction):

- hook: ``publisher.publish(features, prediction, request_id=..., latency_ms=...,
  segments=...)``, which publishes a ModelInput and a live Prediction (Avro, keyed by the
  request id);
- baseline: ``producer.produce(topic, json.dumps(payload).encode())`` for the input and for
  the prediction, to the same two topics, plus ``producer.poll(0)``, per call.

With CPU timing on (the default; ``--no-cpu-time`` turns it off) the hook side also reads
the thread's CPU clock around the (empty) model call and passes ``cpu_ms``, as
``track()`` does for a publisher made with ``measure_cost=True``.

Both sides get the same request ids, made before the clock starts (the app already has
one). ``--hook-makes-ids`` lets the hook make a UUIDv7 per call instead (about 1 us more).

Per-call latency is the calling thread's (``time.perf_counter_ns``); CPU is the process's
(``time.process_time``, every thread, librdkafka's too) from the first call to the end of
the final flush, divided by the calls. Rounds alternate which side goes first; the report
gives each side's median over rounds and the hook/baseline ratios.

The broker is ``SHADOW_KAFKA_BOOTSTRAP`` when set, else a LocalBroker started here.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import broker_settings

from streams.hook import ShadowPublisher
from streams.kafka.config import client_config
from streams.settings import Settings

MODEL, VERSION = "churn", "v1"


def create_topics(settings: Settings) -> None:
    """The two topics the bench writes to (the admin client stays referenced until done)."""
    admin = AdminClient(client_config(settings))
    topics = (settings.topics.inputs, settings.topics.live_predictions)
    new = [NewTopic(t, settings.partitions, settings.replication_factor) for t in topics]
    for future in admin.create_topics(new, operation_timeout=30).values():
        future.result(timeout=30)


def make_features(rng: random.Random) -> dict[str, Any]:
    features: dict[str, Any] = {f"num_{i}": rng.uniform(-100, 100) for i in range(20)}
    for i in range(5):
        features[f"cat_{i}"] = rng.choice(["de", "fr", "us", "mobile", "desktop", "pro"])
    return features


def percentiles(samples_ns: list[int]) -> tuple[float, float]:
    ordered = sorted(samples_ns)
    p50 = ordered[len(ordered) // 2]
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return p50 / 1000, p99 / 1000


def run_hook(
    publisher: ShadowPublisher,
    payloads: list[dict[str, Any]],
    make_ids: bool = False,
    cpu_time: bool = True,
) -> dict[str, float]:
    clock, publish, cpu_clock = time.perf_counter_ns, publisher.publish, time.thread_time_ns
    ids: list[str | None] = [None if make_ids else p["request_id"] for p in payloads]
    samples = [0] * len(payloads)
    segments = {"country": "de"}
    gc.collect()
    cpu0 = time.process_time()
    for i, payload in enumerate(payloads):
        t0 = clock()
        cpu_ms = None
        if cpu_time:  # the two reads track() makes around the (here empty) model call
            cpu0_ns = cpu_clock()
            cpu_ms = (cpu_clock() - cpu0_ns) / 1e6
        publish(
            payload["features"],
            payload["prediction"],
            request_id=ids[i],
            latency_ms=1.5,
            segments=segments,
            cpu_ms=cpu_ms,
        )
        samples[i] = clock() - t0
    remaining = publisher.flush(60)
    cpu = time.process_time() - cpu0
    if remaining:
        raise RuntimeError(f"hook: {remaining} records not delivered within 60 s")
    p50, p99 = percentiles(samples)
    return {"p50_us": p50, "p99_us": p99, "cpu_us_per_call": cpu / len(payloads) * 1e6}


def run_baseline(
    producer: Producer, settings: Settings, payloads: list[dict[str, Any]]
) -> dict[str, float]:
    clock, produce, poll, dumps = time.perf_counter_ns, producer.produce, producer.poll, json.dumps
    inputs, live = settings.topics.inputs, settings.topics.live_predictions
    ids = [p["request_id"] for p in payloads]
    samples = [0] * len(payloads)
    gc.collect()
    cpu0 = time.process_time()
    for i, payload in enumerate(payloads):
        t0 = clock()
        rid = ids[i]
        ts = time.time_ns() // 1_000_000
        produce(
            inputs,
            dumps(
                {
                    "request_id": rid,
                    "model": MODEL,
                    "timestamp_ms": ts,
                    "features": payload["features"],
                    "segments": {"country": "de"},
                }
            ).encode(),
        )
        produce(
            live,
            dumps(
                {
                    "request_id": rid,
                    "model": MODEL,
                    "version": VERSION,
                    "timestamp_ms": ts,
                    "prediction": payload["prediction"],
                    "latency_ms": 1.5,
                    "segments": {"country": "de"},
                }
            ).encode(),
        )
        poll(0)
        samples[i] = clock() - t0
    remaining = producer.flush(60)
    cpu = time.process_time() - cpu0
    if remaining:
        raise RuntimeError(f"baseline: {remaining} messages not delivered within 60 s")
    p50, p99 = percentiles(samples)
    return {"p50_us": p50, "p99_us": p99, "cpu_us_per_call": cpu / len(payloads) * 1e6}


def median_of(rounds: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rounds)


def bench(
    rounds: int, calls: int, seed: int, make_ids: bool = False, cpu_time: bool = True
) -> dict[str, Any]:
    rng = random.Random(seed)
    payloads = [
        {
            "request_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "features": make_features(rng),
            "prediction": rng.uniform(0, 1),
        }
        for _ in range(calls)
    ]
    with broker_settings() as (base, _):
        settings = base.model_copy(update={"topic_prefix": f"bench{uuid.uuid4().hex[:8]}"})
        create_topics(settings)
        publisher = ShadowPublisher(
            settings, model=MODEL, version=VERSION, export_metrics=False, close_at_exit=False
        )
        producer = Producer(client_config(settings))
        hook_rounds: list[dict[str, float]] = []
        base_rounds: list[dict[str, float]] = []
        try:
            warm = payloads[: min(2000, calls)]
            run_hook(publisher, warm, make_ids, cpu_time)
            run_baseline(producer, settings, warm)
            for r in range(rounds):
                if r % 2 == 0:
                    hook_rounds.append(run_hook(publisher, payloads, make_ids, cpu_time))
                    base_rounds.append(run_baseline(producer, settings, payloads))
                else:
                    base_rounds.append(run_baseline(producer, settings, payloads))
                    hook_rounds.append(run_hook(publisher, payloads, make_ids, cpu_time))
            counters = publisher.counters
        finally:
            publisher.close()
            producer.flush(10)
            del producer  # before the broker stops
    hook = {k: round(median_of(hook_rounds, k), 3) for k in hook_rounds[0]}
    base = {k: round(median_of(base_rounds, k), 3) for k in base_rounds[0]}
    return {
        "broker": settings.kafka_bootstrap,
        "rounds": rounds,
        "calls_per_round": calls,
        "records_per_call": 2,
        "hook_makes_ids": make_ids,
        "cpu_time": cpu_time,
        "hook": hook,
        "baseline": base,
        "p50_ratio": round(hook["p50_us"] / base["p50_us"], 3),
        "p99_ratio": round(hook["p99_us"] / base["p99_us"], 3),
        "cpu_ratio": round(hook["cpu_us_per_call"] / base["cpu_us_per_call"], 3),
        "hook_counters": counters.as_dict(),
        "hook_rounds": hook_rounds,
        "baseline_rounds": base_rounds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--hook-makes-ids", action="store_true", help="hook makes UUIDv7s")
    parser.add_argument(
        "--no-cpu-time", action="store_true", help="the hook side does not time the call's CPU"
    )
    args = parser.parse_args(argv)
    result = bench(args.rounds, args.calls, args.seed, args.hook_makes_ids, not args.no_cpu_time)
    if args.json:
        print(json.dumps(result))
    else:
        for side in ("hook", "baseline"):
            print(f"{side:9} " + "  ".join(f"{k}={v}" for k, v in result[side].items()))
        print(" ".join(f"{k}={result[k]}" for k in ("p50_ratio", "p99_ratio", "cpu_ratio")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
