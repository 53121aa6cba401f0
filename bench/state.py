"""Join stage 1 at scale on ``rocksdb://``: memory, restart and expiry with many pending requests.

    python bench/state.py --json [--pending 5000000]

On its own broker (or ``SHADOW_KAFKA_BOOTSTRAP``), topics of ``--partitions`` (3)
partitions. Stage 1 alone (``shadow-eval join --stage pairs --store rocksdb://``) runs as
a subprocess; ``--pending`` requests (live predictions whose candidate and label never
come: pair and label TTLs of a day) are loaded in ``--waves`` equal waves. Figures:

- ``rss_mb``: resident memory of the join after loading; ``bytes_per_pending_request``:
  the least-squares slope of resident memory after each wave (the first wave pays the
  fixed costs, the block cache and memtables fill up to their bounds);
  ``disk_bytes_per_pending_request``: the data dir's size over the requests held.
- ``restart_s``: from a ``kill -9`` and restart of the join on the same data dir (its
  store replays only the changelog after the offset it recorded) until it is caught up:
  a probe of ``--probe`` requests produced while it was down is committed.
  ``rebuild_s``: the same with the data dir wiped, the baseline: a full read of the
  changelog, as every restart did before the stores were persistent.
  ``restart_ratio`` = restart_s / rebuild_s; ``restore_s`` and ``rebuild_restore_s`` are
  the restores alone, as the join logged them.
- ``throughput_ratio``: paired and labelled throughput (``--requests`` complete requests:
  live, candidate, label) with the pending requests held, over the same with none held
  (measured first, on the same join, before loading).
- ``expire_rate``: requests expired per second when every pending request comes due at
  once (the join restarted with TTLs of a second; the TTL change rebuilds its store).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import broker_settings, rss_bytes

from streams.codec import Codec
from streams.kafka.config import client_config
from streams.records import GroundTruth, Prediction, Role
from streams.settings import Settings
from streams.topics import create_topics, partition_of

EXPERIMENTS = """
[join]
app_id = "bench-state"
store = "rocksdb://"
pair_ttl_s = {ttl}
label_ttl_s = {ttl}
expire_every_s = 1
snapshot_every_s = 5

[[experiments]]
name = "bench"
model = "churn"
live_version = "v1"
candidate = "v2"
task = "binary"
primary_metric = "correct"
"""
DAY_S = 86_400
PRODUCER = {
    "linger.ms": 20,
    "batch.num.messages": 10_000,
    "queue.buffering.max.messages": 1_000_000,
}
SCATTER = 0x9E3779B97F4A7C15F39CC0605CEDC835
"""Odd, so ``i * SCATTER mod 2**128`` maps request numbers to distinct ids that look
random: sorted keys share no long prefixes (RocksDB would compress sequential ids)."""
RESTORED = re.compile(r"restored (\d+) requests in ([\d.]+)s, replaying (\d+) changelog records")


class Join:
    """A ``shadow-eval join --stage pairs`` subprocess on ``directory``."""

    def __init__(self, settings: Settings, directory: Path, ttl_s: float, metrics_port: int = 0):
        directory.mkdir(parents=True, exist_ok=True)
        experiments = directory / "experiments.toml"
        experiments.write_text(EXPERIMENTS.format(ttl=ttl_s))
        self.log = directory / f"join-{time.time_ns()}.log"
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "join", "--experiments", str(experiments),
             "--bootstrap", settings.kafka_bootstrap, "--topic-prefix", settings.topic_prefix,
             "--partitions", str(settings.partitions), "--data-dir", str(directory / "data"),
             "--stage", "pairs", "--log-level", "INFO", "--metrics-port", str(metrics_port)],
            stdout=self.log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def restored(self, timeout: float = 900) -> tuple[int, float, int, float]:
        """(requests, restore seconds, changelog records replayed, when logged) of the
        first assignment."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = RESTORED.search(self.log.read_text(errors="replace"))
            if match:
                return int(match[1]), float(match[2]), int(match[3]), time.monotonic()
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"the join restored nothing; its log:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.kill()


def _records(
    settings: Settings, start: int, count: int, complete: bool
) -> list[tuple[str, bytes, bytes, int]]:
    """Pre-encoded records of ``count`` requests: a live prediction each, and with
    ``complete`` a candidate prediction and a label too. Request ids are UUIDs (36
    characters, as the hook makes them), so each record is its template's bytes with the
    id spliced in."""
    codec, topics, template_id = Codec(), settings.topics, str(uuid.UUID(int=0))
    kinds = [
        (topics.live_predictions,
         Prediction(template_id, "churn", "v1", Role.LIVE, 1_000, "yes", latency_ms=5.0)),
    ]  # fmt: skip
    if complete:
        kinds += [
            (topics.shadow_predictions,
             Prediction(template_id, "churn", "v2", Role.SHADOW, 1_000, "no", latency_ms=7.0)),
            (topics.ground_truth, GroundTruth(template_id, "churn", 2_000, "yes")),
        ]  # fmt: skip
    templates = []
    for topic, record in kinds:
        encoded = codec.encode(record)
        at = encoded.index(template_id.encode())
        templates.append((topic, encoded[:at], encoded[at + len(template_id) :]))
    out = []
    for i in range(start, start + count):
        key = str(uuid.UUID(int=(i + 1) * SCATTER % 2**128)).encode()
        partition = partition_of(key, settings.partitions)
        out += [(topic, key, head + key + tail, partition) for topic, head, tail in templates]
    return out


def _produce(settings: Settings, records: list[tuple[str, bytes, bytes, int]]) -> None:
    producer = Producer(client_config(settings, **PRODUCER))
    for topic, key, value, partition in records:
        while True:
            try:
                producer.produce(topic, value, key, partition)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(120) == 0


def _load(
    settings: Settings, start: int, count: int, complete: bool = False, chunk: int = 500_000
) -> None:
    for at in range(start, start + count, chunk):
        _produce(settings, _records(settings, at, min(chunk, start + count - at), complete))


class Progress:
    """The join group's committed input offsets against the topics' ends."""

    def __init__(self, settings: Settings) -> None:
        self.consumer = Consumer(
            client_config(settings, **{"group.id": f"bench-state-{settings.topic_prefix}"})
        )
        topics = settings.topics
        self.partitions = [
            TopicPartition(t, p)
            for t in (topics.live_predictions, topics.shadow_predictions, topics.ground_truth)
            for p in range(settings.partitions)
        ]

    def behind(self) -> int:
        committed = self.consumer.committed(self.partitions, timeout=10)
        ends = [self.consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in self.partitions]
        return sum(end - max(tp.offset, 0) for tp, end in zip(committed, ends, strict=True))

    def wait(self, timeout: float = 1800, every: float = 0.1) -> float:
        """Until nothing is left to commit; returns when (monotonic)."""
        deadline = time.monotonic() + timeout
        while self.behind() > 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the join is still {self.behind()} records behind")
            time.sleep(every)
        return time.monotonic()

    def close(self) -> None:
        self.consumer.close()


def _throughput(
    settings: Settings, progress: Progress, start: int, requests: int, runs: int = 3
) -> float:
    """Input records per second the running join commits, for ``requests`` complete
    requests produced at once (pre-encoded, so the producer is not the limit): the
    median of ``runs`` runs."""
    rates = []
    for run in range(runs):
        records = _records(settings, start + run * requests, requests, complete=True)
        began = time.monotonic()
        _produce(settings, records)
        rates.append(len(records) / (progress.wait() - began))
    return statistics.median(rates)


def _disk_bytes(directory: Path) -> int:
    return sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())


def _restart(
    settings: Settings, progress: Progress, directory: Path, probe_at: int, probe: int, wipe: bool
) -> dict[str, float]:
    """Restart the join after a kill -9 (the data dir wiped first with ``wipe``) with a
    probe produced meanwhile: seconds until it is caught up, and its restore."""
    if wipe:
        shutil.rmtree(directory / "data")
    _load(settings, probe_at, probe, complete=True)
    join = Join(settings, directory, DAY_S)
    requests, restore_s, replayed, _ = join.restored()
    caught_up = progress.wait(every=0.05) - join.started
    join.kill()
    return {
        "caught_up_s": caught_up,
        "restore_s": restore_s,
        "replayed": replayed,
        "requests": requests,
    }


def _expire_rate(
    settings: Settings, directory: Path, pending: int, port: int = 9719
) -> dict[str, float]:
    """Restart with TTLs of a second: every pending request is due at once."""
    join = Join(settings, directory, 1, metrics_port=port)
    try:
        requests, _, _, restored_at = join.restored()
        deadline = time.monotonic() + 3600
        while _pending_gauge(port) in (0, float("inf")):  # set once restored
            if time.monotonic() > deadline or join.process.poll() is not None:
                raise RuntimeError("the join never said how many requests it holds")
            time.sleep(0.05)
        while _pending_gauge(port) > 0:
            if time.monotonic() > deadline or join.process.poll() is not None:
                raise RuntimeError("expiry never finished")
            time.sleep(0.1)
        took = time.monotonic() - restored_at
    finally:
        join.stop()
    return {"expire_rate": requests / took, "expired": requests, "expire_s": took}


def _pending_gauge(port: int) -> float:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return float("inf")
    for line in text.splitlines():
        if line.startswith("shadow_join_pending_requests "):
            return float(line.split()[1])
    return float("inf")


def _note(what: str, value: Any) -> None:
    """A figure as soon as it is measured (stderr): a long run still reports what it got."""
    print(f"bench/state.py: {what} {value}", file=sys.stderr, flush=True)


def run(settings: Settings, args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    progress = Progress(settings)
    join = Join(settings, directory, DAY_S)
    join.restored()
    next_id = 10**12  # the throughput and probe requests, apart from the pending ones
    # Warm-up: the broker's JVM compiles its hot paths during the first runs.
    _throughput(settings, progress, next_id, args.requests, runs=2)
    next_id += 2 * args.requests
    none_rate = _throughput(settings, progress, next_id, args.requests)
    _note("records_per_s_none_pending", none_rate)
    next_id += 3 * args.requests
    per_wave, rss, held = args.pending // args.waves, [], []
    for wave in range(args.waves):
        _load(settings, wave * per_wave, per_wave)
        progress.wait()
        time.sleep(1)
        rss.append(rss_bytes(join.process.pid))
        held.append((wave + 1) * per_wave)
        _note(f"rss_mb after {held[-1]} pending", rss[-1] / 2**20)
    pending = held[-1]
    loaded_rate = _throughput(settings, progress, next_id, args.requests)
    _note("records_per_s_pending", loaded_rate)
    next_id += 3 * args.requests
    time.sleep(6)  # a periodic offset record after the load (a crash may come any time)
    rss_after = rss_bytes(join.process.pid)
    join.kill()
    disk = _disk_bytes(directory / "data")
    _note("disk_bytes", disk)
    restart = _restart(settings, progress, directory, next_id, args.probe, wipe=False)
    _note("restart", restart)
    next_id += args.probe
    rebuild = _restart(settings, progress, directory, next_id, args.probe, wipe=True)
    _note("rebuild", rebuild)
    expiry = _expire_rate(settings, directory, pending)
    progress.close()
    return {
        "pending": pending,
        "partitions": settings.partitions,
        "rss_mb": rss_after / 2**20,
        "rss_first_wave_mb": rss[0] / 2**20,
        "bytes_per_pending_request": statistics.linear_regression(held, rss).slope,
        "disk_bytes_per_pending_request": disk / pending,
        "restart_s": restart["caught_up_s"],
        "rebuild_s": rebuild["caught_up_s"],
        "restart_ratio": restart["caught_up_s"] / rebuild["caught_up_s"],
        "restore_s": restart["restore_s"],
        "restore_replayed_records": restart["replayed"],
        "rebuild_restore_s": rebuild["restore_s"],
        "rebuild_replayed_records": rebuild["replayed"],
        "restored_requests": restart["requests"],
        "rebuilt_requests": rebuild["requests"],
        "records_per_s_none_pending": none_rate,
        "records_per_s_pending": loaded_rate,
        "throughput_ratio": loaded_rate / none_rate,
        **expiry,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pending", type=int, default=5_000_000)
    parser.add_argument("--waves", type=int, default=5)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument(
        "--requests", type=int, default=30_000, help="complete requests per throughput run"
    )
    parser.add_argument(
        "--probe", type=int, default=1_000, help="requests produced while the join is down"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with (
        broker_settings() as (base, broker),
        tempfile.TemporaryDirectory(prefix="bench-state-") as tmp,
    ):
        settings = base.model_copy(
            update={"topic_prefix": f"bs{time.time_ns() % 10**8}", "partitions": args.partitions}
        )
        create_topics(settings)
        result = {"broker": broker, **run(settings, args, Path(tmp))}
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
