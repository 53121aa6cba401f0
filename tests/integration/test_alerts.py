"""Alerts on a real broker: subscribe(), `shadow-eval alerts tail`, and the webhook sink."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from streams.alerts import WebhookSink, slack_text, subscribe, to_dict
from streams.codec import Codec
from streams.kafka.config import client_config
from streams.records import Alert, AlertState, Decision, MetricResult, Verdict
from streams.settings import Settings
from tests.integration.helpers import create_topics

CLI = str(Path(sys.executable).with_name("shadow-eval"))
GARBAGE = b"\x07 definitely not avro"


def _alert(i: int, experiment: str, state: AlertState = AlertState.FIRING) -> Alert:
    rule = ("worse-log-loss", "latency", "error-rate")[i % 3]
    segment = "" if i % 2 else "country=DE"
    return Alert(
        dedup_key=f"{experiment}:{rule}:{segment}",
        state=state,
        experiment=experiment,
        rule=rule,
        severity=("critical", "warning", "info")[i % 3],
        direction="worse",
        result=MetricResult(
            "log_loss",
            "msprt",
            100 + i,
            segment,
            evalue=40.0 + i,
            effect=0.01 * i,
            ci_low=0.001,
            ci_high=0.02 * (i + 1),
        ),
        message=f"alert number {i}",
        timestamp_ms=1_700_000_000_000 + i * 1000,
    )


def _verdict(i: int, experiment: str) -> Verdict:
    return Verdict(
        experiment,
        Decision.REJECT if i % 2 else Decision.CONTINUE,
        f"verdict number {i}",
        1_700_000_000_000 + i * 1000,
        primary=MetricResult("log_loss", "msprt", 100 + i, effect=0.02, pvalue=0.001),
        guardrails=(MetricResult("latency_ms", "msprt", 100 + i, effect=-1.5),),
    )


RECORDS: list[Alert | Verdict] = [
    _alert(0, "churn:v2"),
    _alert(1, "fraud:v3"),
    _verdict(2, "churn:v2"),
    _alert(3, "churn:v2"),
    _alert(0, "churn:v2", AlertState.RESOLVED),
    _verdict(5, "fraud:v3"),
    _alert(6, "fraud:v3"),
    _alert(7, "churn:v2"),
]


def _key(record: Alert | Verdict) -> bytes:
    return (record.dedup_key if isinstance(record, Alert) else record.experiment).encode()


def _produce(settings: Settings, items: list[Alert | Verdict | bytes]) -> None:
    """Publish records (Avro, keyed like the join agent) and raw bytes, in this order."""
    codec = Codec()
    producer = Producer(client_config(settings, acks="all"))
    for item in items:
        if isinstance(item, bytes):
            producer.produce(settings.topics.alerts, value=item, key=b"garbage")
        else:
            producer.produce(settings.topics.alerts, value=codec.encode(item), key=_key(item))
        producer.poll(0)
    assert producer.flush(30) == 0


@pytest.fixture
def one_partition(kafka_settings: Settings) -> Settings:
    """Settings whose alerts topic has a single partition (a total order to check)."""
    create_topics(kafka_settings, [kafka_settings.topics.alerts], partitions=1)
    return kafka_settings


def _tail(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, "alerts", "tail", "--bootstrap", settings.kafka_bootstrap,
         "--topic-prefix", settings.topic_prefix, *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


# -- subscribe() ------------------------------------------------------------------------


def test_subscribe_yields_exactly_the_records_in_order(one_partition: Settings) -> None:
    _produce(one_partition, list(RECORDS))

    everything = list(subscribe(one_partition, include_verdicts=True, timeout=60))
    alerts_only = list(subscribe(one_partition, timeout=60))
    churn = list(subscribe(one_partition, experiment="churn:v2", include_verdicts=True, timeout=60))

    assert everything == RECORDS
    assert alerts_only == [r for r in RECORDS if isinstance(r, Alert)]
    assert churn == [r for r in RECORDS if r.experiment == "churn:v2"]
    assert list(subscribe(one_partition, experiment="nope", timeout=60)) == []


def test_subscribe_skips_garbage_and_counts_it(one_partition: Settings) -> None:
    _produce(one_partition, [RECORDS[0], GARBAGE, RECORDS[1], b"", RECORDS[2]])

    with subscribe(one_partition, include_verdicts=True, timeout=60) as subscription:
        got = list(subscription)

    assert got == RECORDS[:3]
    assert subscription.skipped == 2


def test_subscribe_on_many_partitions_keeps_each_alerts_order(kafka_settings: Settings) -> None:
    create_topics(kafka_settings, [kafka_settings.topics.alerts], partitions=6)
    _produce(kafka_settings, list(RECORDS))

    got = list(subscribe(kafka_settings, include_verdicts=True, timeout=60))

    assert sorted(map(repr, got)) == sorted(map(repr, RECORDS))
    for key in {_key(r) for r in RECORDS}:
        assert [r for r in got if _key(r) == key] == [r for r in RECORDS if _key(r) == key]


def test_follow_latest_sees_only_new_records(one_partition: Settings) -> None:
    _produce(one_partition, RECORDS[:2])

    with subscribe(
        one_partition, follow=True, from_beginning=False, include_verdicts=True, timeout=60
    ) as subscription:
        _produce(one_partition, RECORDS[2:5])
        got = [record for _, record in zip(range(3), subscription, strict=False)]

    assert got == RECORDS[2:5]


def test_follow_stops_at_its_timeout(one_partition: Settings) -> None:
    _produce(one_partition, RECORDS[:1])

    got = list(subscribe(one_partition, follow=True, timeout=3))

    assert got == RECORDS[:1]


def test_subscribing_to_a_missing_topic_is_a_clear_error(kafka_settings: Settings) -> None:
    from streams.alerts import SubscribeError

    with pytest.raises(SubscribeError, match=r"does not exist.*topics create"):
        subscribe(kafka_settings)


# -- shadow-eval alerts tail ------------------------------------------------------------


def test_tail_json_prints_exactly_the_records(one_partition: Settings) -> None:
    _produce(one_partition, [*RECORDS[:4], GARBAGE, *RECORDS[4:]])

    result = _tail(one_partition, "--json")

    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines == [to_dict(r) for r in RECORDS]
    assert [line["kind"] for line in lines] == [
        "verdict" if isinstance(r, Verdict) else "alert" for r in RECORDS
    ]
    assert "skipping an undecodable message" in result.stderr


def test_tail_filters_and_prints_human_lines(one_partition: Settings) -> None:
    _produce(one_partition, list(RECORDS))

    result = _tail(one_partition, "--experiment", "fraud:v3", "--no-verdicts")

    assert result.returncode == 0, result.stderr
    fraud = [r for r in RECORDS if isinstance(r, Alert) and r.experiment == "fraud:v3"]
    lines = result.stdout.splitlines()
    assert len(lines) == len(fraud)
    for line, alert in zip(lines, fraud, strict=True):
        assert alert.rule in line and alert.state.value in line and alert.message in line
        assert "\x1b[" not in line  # no colour codes when stdout is not a terminal


def test_tail_of_a_missing_topic_fails_cleanly(kafka_settings: Settings) -> None:
    result = _tail(kafka_settings, "--json")

    assert result.returncode == 1
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr


# -- webhook ----------------------------------------------------------------------------


class _Hook:
    """A local HTTP endpoint that answers 503 to the first ``failures`` POSTs."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts = 0
        self.bodies: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with hook.lock:
                    hook.attempts += 1
                    failing = hook.attempts <= hook.failures
                    if not failing:
                        hook.bodies.append(json.loads(body))
                self.send_response(503 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/secret-token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _Hook:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@pytest.fixture
def hook() -> Iterator[_Hook]:
    with _Hook(failures=2) as running:
        yield running


def _delivered(hook: _Hook) -> list[tuple[str, int, str]]:
    return [
        (body.get("dedup_key") or body["experiment"], body["timestamp_ms"], body["kind"])
        for body in hook.bodies
    ]


def _expected(records: list[Alert | Verdict]) -> list[tuple[str, int, str]]:
    return [
        (r.dedup_key if isinstance(r, Alert) else r.experiment, r.timestamp_ms,
         "alert" if isinstance(r, Alert) else "verdict")
        for r in records
    ]  # fmt: skip


def test_tail_webhook_delivers_each_record_once_despite_503s_and_garbage(
    one_partition: Settings, hook: _Hook
) -> None:
    _produce(one_partition, [RECORDS[0], GARBAGE, *RECORDS[1:5], GARBAGE, *RECORDS[5:]])

    result = _tail(one_partition, "--json", "--webhook", hook.url)

    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == len(RECORDS)
    assert _delivered(hook) == _expected(RECORDS)
    assert hook.attempts == len(RECORDS) + 2
    assert [body["text"] for body in hook.bodies] == [slack_text(r) for r in RECORDS]
    assert all(body["text"] and "\n" not in body["text"] for body in hook.bodies)
    assert "secret-token" not in result.stderr


def test_webhook_sink_from_code(one_partition: Settings, hook: _Hook) -> None:
    _produce(one_partition, [*RECORDS[:3], GARBAGE, *RECORDS[3:]])

    with (
        WebhookSink(hook.url, backoff=0.01) as sink,
        subscribe(one_partition, include_verdicts=True, timeout=60) as subscription,
    ):
        for record in subscription:
            sink.send(record)

    assert (sink.delivered, sink.failed, sink.retries) == (len(RECORDS), 0, 2)
    assert subscription.skipped == 1
    assert _delivered(hook) == _expected(RECORDS)
    alert_body = hook.bodies[0]
    assert alert_body["text"].startswith(":rotating_light: *FIRING* [critical] churn:v2")
    assert alert_body["result"]["metric"] == "log_loss"


def test_webhook_gives_up_and_the_tail_goes_on(one_partition: Settings) -> None:
    _produce(one_partition, RECORDS[:3])

    with _Hook(failures=3) as hook:
        result = _tail(one_partition, "--json", "--webhook", hook.url, "--webhook-attempts", "3")

    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 3
    assert _delivered(hook) == _expected(RECORDS[1:3])
    assert "giving up" in result.stderr and "1 given up" in result.stderr
