"""No-code capture: KServe inference-logger CloudEvents through `shadow-eval ingest
cloudevents`, a worker and the join give the same counts as the same traffic through the
hook; undecodable events are answered 400 and counted."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cloudevents.core.bindings.http import to_binary_event, to_structured_event
from cloudevents.core.v1.event import CloudEvent

from streams.broker.config import free_port
from streams.hook import ShadowPublisher
from streams.settings import Settings
from streams.worker import ShadowWorker, WorkerConfig
from tests.integration.helpers import create_topics, wait_for_topics
from tests.integration.join_helpers import REPO, Expected, JoinProcess, Outputs

pytestmark = pytest.mark.integration

COLUMNS = ("tenure", "spend", "visits")
REQUEST = "org.kubeflow.serving.inference.request"
RESPONSE = "org.kubeflow.serving.inference.response"
JOIN = """
[join]
pair_ttl_s = 60
label_ttl_s = 120
expire_every_s = 1
snapshot_every_s = 1
"""
EXPERIMENT = """
[[experiments]]
name = "{name}"
model = "{model}"
live_version = "v1"
candidate = "v2"
task = "binary"
positive_class = "1"
primary_metric = "correct"
"""


def kserve_event(
    kind: str, event_id: str, data: dict[str, Any], at: datetime, service: str = "churn-ce"
) -> CloudEvent:
    """An event as KServe's inference logger sends it (pkg/logger: id, type, source,
    the InferenceService's name, namespace, component and endpoint as extensions)."""
    attributes = {
        "specversion": "1.0",
        "id": event_id,
        "type": kind,
        "source": "http://localhost:9081/",
        "time": at,
        "datacontenttype": "application/json",
        "inferenceservicename": service,
        "namespace": "default",
        "component": "predictor",
        "endpoint": "default",
    }
    return CloudEvent(attributes=attributes, data=data)


def payloads(rows: list[list[float]], live: list[int], oip: bool) -> tuple[dict[str, Any], ...]:
    if not oip:
        return {"instances": rows}, {"predictions": live}
    request = {
        "inputs": [
            {
                "name": "input-0",
                "shape": [len(rows), len(COLUMNS)],
                "datatype": "FP64",
                "data": [v for row in rows for v in row],
            }
        ]
    }
    response = {
        "model_name": "churn-ce",
        "outputs": [
            {"name": "predict", "shape": [len(live), 1], "datatype": "INT64", "data": live}
        ],
    }
    return request, response  # fmt: skip


def live_model(row: list[float]) -> int:
    return int(row[0] + row[1] > 0)


def candidate(features: dict[str, Any]) -> str:
    return "1" if features["tenure"] > 0 else "0"


@pytest.fixture
def ingest_process(kafka_settings: Settings, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = (tmp_path / "ingest.log").open("wb")
    env = {**os.environ, "SHADOW_KAFKA_BOOTSTRAP": kafka_settings.kafka_bootstrap}
    process = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "ingest", "cloudevents", "--port", str(port),
         "--version", "v1", "--features", ",".join(COLUMNS),
         "--topic-prefix", kafka_settings.topic_prefix],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert process.poll() is None, (tmp_path / "ingest.log").read_text()
        assert time.monotonic() < deadline, "the ingest server never answered"
        time.sleep(0.2)
    yield url
    process.terminate()
    assert process.wait(30) == 0, (tmp_path / "ingest.log").read_text()
    log.close()


def _unmatched(settings: Settings) -> str:
    """Which request ids lack an input, a live or a shadow prediction (a failure's story)."""
    from streams.records import ModelInput, Prediction, Role
    from tests.integration.test_worker import read_records

    topics = settings.topics
    seen: dict[str, set[str]] = {}
    for topic in (topics.inputs, topics.live_predictions, topics.shadow_predictions):
        for record in read_records(settings, topic, want=10**9, timeout=10):
            if isinstance(record, ModelInput):
                seen.setdefault("input", set()).add(record.request_id)
            elif isinstance(record, Prediction):
                role = "live" if record.role == Role.LIVE else "shadow"
                seen.setdefault(role, set()).add(record.request_id)
    every = set().union(*seen.values())
    return "; ".join(f"no {kind}: {sorted(every - ids)}" for kind, ids in sorted(seen.items()))


def _warm_up(settings: Settings, send: Any, timeout: float = 90) -> int:
    """Publish requests of a model no experiment names until one's live prediction is in
    the topic; how many it took. A producer's first records right after the broker
    starts were seen missing from the live-predictions topic now and then (noted in the
    issue's report); the comparison below is about ingest, so it starts after that."""
    from streams.records import Prediction
    from tests.integration.test_worker import read_records

    deadline = time.monotonic() + timeout
    for attempt in range(1, 1000):
        send(f"warmup-{attempt}")
        for record in read_records(settings, settings.topics.live_predictions, 10**9, 5):
            if isinstance(record, Prediction) and record.model == "warmup":
                return attempt
        assert time.monotonic() < deadline, "no warm-up prediction ever arrived"
    raise AssertionError("unreachable")


def _metric(url: str, outcome: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    line = f'shadow_ingest_events_total{{outcome="{outcome}"}} '
    return float(next(x for x in text.splitlines() if x.startswith(line)).split()[-1])


def test_logged_events_count_as_the_same_traffic_through_the_hook(
    kafka_settings: Settings, ingest_process: str, tmp_path: Path
) -> None:
    create_topics(kafka_settings)
    wait_for_topics(kafka_settings)
    rng = random.Random(5)
    experiments = tmp_path / "experiments.toml"
    experiments.write_text(
        JOIN
        + EXPERIMENT.format(name="ce", model="churn-ce")
        + EXPERIMENT.format(name="hook", model="churn-hook")
    )
    stop = threading.Event()
    config = WorkerConfig(name="churn", batch_size=200, batch_ms=20, status_every=0)
    worker = ShadowWorker(kafka_settings, candidate, "v2", config=config)
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    join = JoinProcess(kafka_settings, experiments, tmp_path / "join.log")
    outputs = Outputs(kafka_settings)
    hook = ShadowPublisher(kafka_settings, model="churn-hook", version="v1",
                           export_metrics=False, close_at_exit=False)  # fmt: skip
    labelled: list[tuple[str, str]] = []
    rows_sent = 0
    try:
        with httpx.Client(base_url=ingest_process, timeout=10) as client:

            def warm_ingest(event_id: str) -> None:
                for kind, data in ((REQUEST, {"instances": [[0.0, 0.0, 0.0]]}),
                                   (RESPONSE, {"predictions": [0]})):  # fmt: skip
                    half = kserve_event(kind, event_id, data, datetime.now(UTC), "warmup")
                    message = to_binary_event(half)
                    client.post("/", headers=message.headers, content=message.body)

            ingest_warmups = _warm_up(kafka_settings, warm_ingest)
            _warm_up(kafka_settings, lambda rid: hook.publish({"x": 0.0}, 0, request_id=rid,
                                                              model="warmup"))  # fmt: skip
            for event in range(120):
                count = 1 if event % 4 else 3  # every fourth request holds three rows
                rows = [[round(rng.gauss(0, 1), 6) for _ in COLUMNS] for _ in range(count)]
                live = [live_model(row) for row in rows]
                request, response = payloads(rows, live, oip=event % 2 == 1)
                at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=event)
                halves = [kserve_event(REQUEST, f"ev{event}", request, at),
                          kserve_event(RESPONSE, f"ev{event}", response,
                                       at + timedelta(milliseconds=12))]  # fmt: skip
                if event % 3 == 0:
                    halves.reverse()  # the logger does not promise an order
                for half in halves:
                    encode = to_structured_event if event % 5 == 0 else to_binary_event
                    message = encode(half)
                    answer = client.post("/", headers=message.headers, content=message.body)
                    assert answer.status_code == 202, answer.text
                ids = [f"ev{event}"] if count == 1 else [f"ev{event}.{i}" for i in range(count)]
                for request_id, row, value in zip(ids, rows, live, strict=True):
                    features = dict(zip(COLUMNS, row, strict=True))
                    hook.publish(features, value, request_id=f"h-{request_id}", latency_ms=12.0)
                    truth = str(value if rng.random() < 0.9 else 1 - value)
                    labelled.append((request_id, truth))
                rows_sent += count
            junk = [
                ({"content-type": "application/json"}, b"{}"),  # no ce- headers, not structured
                ({"ce-specversion": "1.0", "ce-id": "x", "ce-source": "/", "ce-type": REQUEST,
                  "content-type": "application/json"}, b'{"rows": []}'),
                ({"ce-specversion": "1.0", "ce-id": "y", "ce-source": "/", "ce-type": "other",
                  "content-type": "application/json"}, b'{"instances": [[1]]}'),
            ]  # fmt: skip
            for headers, body in junk:
                assert client.post("/", headers=headers, content=body).status_code == 400
        publisher = ShadowPublisher(kafka_settings, model="churn-ce", version="v1",
                                    export_metrics=False, close_at_exit=False)  # fmt: skip
        for request_id, truth in labelled:  # labels come later, by the request ids
            publisher.label(request_id, truth)
            hook.label(f"h-{request_id}", truth)
        assert publisher.close() == 0 and hook.close() == 0
        assert (hook.counters.dropped, hook.counters.failed) == (0, 0), hook.counters
        # Every row labelled, TTLs far away: the counts are final once all is joined.
        expected = Expected(paired=rows_sent, labelled=rows_sent)
        try:
            outputs.wait_for(expected, timeout=150, names=("ce", "hook"))
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{_unmatched(kafka_settings)}") from None
        assert outputs.counts("ce") == outputs.counts("hook")
        assert _metric(ingest_process, "published") == rows_sent + ingest_warmups
        events = 120 + ingest_warmups
        assert _metric(ingest_process, "request") == _metric(ingest_process, "response") == events
        assert _metric(ingest_process, "undecodable") == 3
    finally:
        stop.set()
        thread.join(30)
        join.stop()
        outputs.close()
