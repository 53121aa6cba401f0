"""Stage 1 side by side: ``shadow-eval join --stage pairs`` against the same pairing written the
idiomatic way in faust-streaming and in quixstreams.

    python bench/peers.py --json

The workload is the join's first stage: pair each request's live and candidate predictions
and its label by request id and emit a PAIRED and a LABELLED event. Each contender gets its
own copy of the same preloaded records (same generator and seed, live and shadow predictions
and labels) on the same broker in the same run, so none reads topics another already warmed.

- ours: ``shadow-eval join --stage pairs`` (Kafka transactions, exactly once);
- faust: one agent on the three topics and a table keyed by request id
  (``bench/_peer_faust.py``, faust's default at-least-once processing);
- quix: a ``StreamingDataFrame`` over the three topics with a stateful function and
  ``processing_guarantee="exactly-once"`` (``bench/_peer_quix.py``). quixstreams pins an
  older confluent-kafka than ours, so it runs in its own venv, made on first use under the
  cache directory (``<cache>/venv-quixstreams``).

Rate: events emitted (2 per request) times 3/2, i.e. input records, over the span between
the broker timestamps of the first and the last output record, not counting the events of
the first record (the span starts when it is written); start-up and group join are not
counted, for any of them. The join writes its events in batches (one transaction per up to
20,000 input records), so ``--requests`` must give it several. Exact: the output holds each
request's PAIRED and LABELLED event once (read committed), nothing missing, nothing twice.
Each contender runs ``--runs`` times (fresh topics each time); the medians are reported,
``ratio_vs_faust`` and ``ratio_vs_quix`` are ours over theirs. ``--kill-runs`` more runs per
contender kill it with SIGKILL once half its events are out and start it again (each keeps
its own state: the join's changelog, faust's table changelog, quix's state directory and
changelog), and report the duplicates and missing events that leaves
(``<contender>_killed_halfway``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import broker_settings
from join import preload, start_join

from streams.codec import Codec
from streams.kafka.config import client_config
from streams.settings import Settings
from streams.topics import create_topics

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
QUIX_PINS = ["quixstreams==3.28.1", "fastavro", "numpy"]
QUIET_S = 15.0
"""A contender whose output has not grown for this long (after its first event) is done."""


def quix_python(cache_dir: Path) -> Path:
    """The Python of the quixstreams venv, made on first use."""
    venv = cache_dir / "venv-quixstreams"
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    if not stamp.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *QUIX_PINS],
            check=True,
        )
        stamp.touch()
    return python


def start(command: list[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log.open("ab") as out:
        return subprocess.Popen(
            command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def read_output(
    settings: Settings,
    topic: str,
    expected: int,
    events_of: Callable[[Any], list[tuple[str, str]]],
    launch: Callable[[], subprocess.Popen[bytes]],
    timeout: float,
    crash_at: int | None = None,
) -> tuple[Counter[tuple[str, str]], int, float]:
    """The (kind, request id) of every committed output event, how many the first output
    record held, and the span in seconds between the broker timestamps of the first and the
    last output record, once ``expected`` events are
    in (then a few more seconds, to see duplicates) or the output stopped growing.

    ``launch`` starts the contender; with ``crash_at`` it is killed (SIGKILL, its whole
    process group) once that many events are out, and started again."""
    process = launch()
    consumer = Consumer(
        client_config(
            settings,
            **{
                "group.id": f"peers-{time.time_ns()}",
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
            },
        )
    )
    consumer.subscribe([topic])
    seen: Counter[tuple[str, str]] = Counter()
    stamps: list[int] = []
    first_record_events = 0
    deadline = time.monotonic() + timeout
    last_growth = time.monotonic()
    try:
        while time.monotonic() < deadline:
            for message in consumer.consume(10_000, timeout=0.5):
                if message.error() is None:
                    stamps.append(message.timestamp()[1])
                    events = events_of(message)
                    first_record_events = first_record_events or len(events)
                    seen.update(events)
                    last_growth = time.monotonic()
            total = sum(seen.values())
            if crash_at is not None and total >= crash_at:
                crash_at = None
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(30)
                process = launch()
            quiet = time.monotonic() - last_growth
            if (total >= expected and quiet > 3.0) or (stamps and quiet > QUIET_S):
                break
            if process.poll() is not None and quiet > 3.0:
                break
    finally:
        consumer.close()
        stop(process)
    span = (max(stamps) - min(stamps)) / 1000 if len(stamps) > 1 else float("nan")
    return seen, first_record_events, span


def ours_events(codec: Codec) -> Callable[[Any], list[tuple[str, str]]]:
    from streams.join.stage_judge import events_of

    def decode(message: Any) -> list[tuple[str, str]]:
        return [(str(e.kind), e.request_id) for e in events_of(codec.decode(message.value()))]

    return decode


def peer_events(message: Any) -> list[tuple[str, str]]:
    event = json.loads(message.value())
    return [(event["kind"], event["id"])]


def one_run(
    contender: str, base: Settings, args: argparse.Namespace, tmp: Path, run: int, crashed: bool
) -> dict[str, Any]:
    settings = base.model_copy(
        update={"topic_prefix": f"p{contender[0]}{time.time_ns() % 10**8}", "partitions": 3}
    )
    create_topics(settings)
    preload(settings, args.requests, labels=True, seed=run)
    directory = tmp / f"{contender}{run}{'-crash' if crashed else ''}"
    directory.mkdir(parents=True)
    output = f"{settings.topic_prefix}.peer.events"
    if contender == "ours":
        launch = lambda: start_join(settings, directory, stage="pairs")  # noqa: E731
        output, decode = settings.topics.join_events, ours_events(Codec())
    else:
        create_topics_named(settings, [output])
        if contender == "faust":
            command = [sys.executable, str(BENCH / "_peer_faust.py")]
            command += [settings.kafka_bootstrap, settings.topic_prefix, "3", output]
            command += ["worker", "-l", "warn"]
        else:
            command = [str(args.quix_python), str(BENCH / "_peer_quix.py")]
            command += [settings.kafka_bootstrap, settings.topic_prefix, str(directory), output]
        launch = lambda: start(command, directory / f"{contender}.log", directory)  # noqa: E731
        decode = peer_events
    expected = 2 * args.requests
    crash_at = expected // 2 if crashed else None
    seen, first, span = read_output(
        settings, output, expected, decode, launch, args.timeout, crash_at
    )
    total = sum(seen.values())
    duplicates = sum(n - 1 for n in seen.values() if n > 1)
    distinct = len(seen)
    return {
        # The span starts when the first output record is written: its events are not in it.
        "records_per_s": 1.5 * (total - first) / span if span == span and span > 0 else 0.0,
        "events": total,
        "duplicates": duplicates,
        "missing": expected - distinct,
        "exact": total == expected and distinct == expected,
        "log": str(directory),
    }


def create_topics_named(settings: Settings, names: list[str]) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    from streams.kafka.config import admin_config

    admin = AdminClient(admin_config(settings))
    futures = admin.create_topics([NewTopic(n, num_partitions=3) for n in names])
    for future in futures.values():
        future.result(timeout=30)


def summary(run: dict[str, Any], *leave_out: str) -> dict[str, Any]:
    return {
        k: (round(v) if isinstance(v, float) else v)
        for k, v in run.items()
        if k != "log" and k not in leave_out
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3, help="runs per contender (medians)")
    parser.add_argument("--timeout", type=float, default=600.0, help="per run")
    parser.add_argument("--only", default="ours,faust,quix", help="comma-separated contenders")
    parser.add_argument(
        "--kill-runs", type=int, default=1, help="runs per contender killed -9 halfway"
    )
    args = parser.parse_args()
    contenders = args.only.split(",")
    with broker_settings() as (base, broker), tempfile.TemporaryDirectory() as tmp:
        if "quix" in contenders:
            args.quix_python = quix_python(base.cache_dir)
        runs: dict[str, list[dict[str, Any]]] = {c: [] for c in contenders}
        killed: dict[str, list[dict[str, Any]]] = {c: [] for c in contenders}
        for run in range(args.runs):  # interleaved: load changes hit every contender alike
            for contender in contenders:
                runs[contender].append(one_run(contender, base, args, Path(tmp), run, False))
        for run in range(args.kill_runs):
            for contender in contenders:
                killed[contender].append(one_run(contender, base, args, Path(tmp), run, True))
    result: dict[str, Any] = {"bench": "peers", "broker": broker, "requests": args.requests}
    for contender, results in runs.items():
        result[f"{contender}_records_per_s"] = round(
            statistics.median(r["records_per_s"] for r in results)
        )
        result[f"{contender}_exact"] = all(r["exact"] for r in results)
        result[f"{contender}_runs"] = [summary(r) for r in results]
        result[f"{contender}_killed_halfway"] = [
            summary(r, "records_per_s") for r in killed[contender]
        ]
    for peer in ("faust", "quix"):
        if "ours" in runs and peer in runs and result[f"{peer}_records_per_s"]:
            result[f"ratio_vs_{peer}"] = round(
                result["ours_records_per_s"] / result[f"{peer}_records_per_s"], 2
            )
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
