"""The webhook sink's retries, backoff, Retry-After, give-up and redaction (no network)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import httpx
import pytest

from streams.alerts import WebhookSink, redact_url, retry_after_seconds, slack_text, to_dict
from streams.alerts.webhook import webhook_payload
from streams.records import Alert, AlertState, MetricResult

URL = "https://hooks.example.com/services/T0/B0/very-secret"
ALERT = Alert(
    "churn:slow:", AlertState.FIRING, "churn", "slow", "warning", "worse",
    MetricResult("latency_ms", "msprt", 500, effect=3.0), "slower", 1_000,
)  # fmt: skip


class Script:
    """Answers requests from a list: an int is a status, an exception is raised."""

    def __init__(self, *answers: int | Exception | httpx.Response) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if self.answers else 200
        if isinstance(answer, Exception):
            raise answer
        return answer if isinstance(answer, httpx.Response) else httpx.Response(answer)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_sink(sleeps: list[float]) -> Iterator[Callable[..., tuple[WebhookSink, Script]]]:
    clients: list[httpx.Client] = []

    def make(
        *answers: int | Exception | httpx.Response, **kwargs: object
    ) -> tuple[WebhookSink, Script]:
        script = Script(*answers)
        client = httpx.Client(transport=httpx.MockTransport(script))
        clients.append(client)
        options: dict[str, object] = {"sleep": sleeps.append, "jitter": lambda: 0.5}
        options.update(kwargs)
        return WebhookSink(URL, client=client, **options), script  # type: ignore[arg-type]

    yield make
    for client in clients:
        client.close()


def test_delivers_slack_text_and_structured_fields(
    make_sink: Callable[..., tuple[WebhookSink, Script]],
) -> None:
    sink, script = make_sink(200)

    assert sink.send(ALERT) is True

    (request,) = script.requests
    body = json.loads(request.content)
    assert request.method == "POST" and str(request.url) == URL
    assert request.headers["content-type"] == "application/json"
    assert body["text"] == slack_text(ALERT)
    assert {k: v for k, v in body.items() if k != "text"} == to_dict(ALERT)
    assert (sink.delivered, sink.failed, sink.retries) == (1, 0, 0)


def test_retries_5xx_429_and_connection_errors_with_growing_backoff(
    make_sink: Callable[..., tuple[WebhookSink, Script]], sleeps: list[float]
) -> None:
    sink, script = make_sink(
        503, httpx.ConnectError("refused"), 429, httpx.ReadTimeout("slow"), 200,
        backoff=1.0, max_backoff=100.0,
    )  # fmt: skip

    assert sink.send(ALERT) is True

    assert len(script.requests) == 5
    # equal jitter with jitter()=0.5: 3/4 of backoff * 2 ** (k - 1)
    assert sleeps == [0.75, 1.5, 3.0, 6.0]
    assert (sink.delivered, sink.failed, sink.retries) == (1, 0, 4)


def test_backoff_is_jittered_within_bounds_and_capped(sleeps: list[float]) -> None:
    draws = iter([0.0, 0.999, 0.0, 0.999, 0.5])
    transport = httpx.MockTransport(lambda request: httpx.Response(500))
    with (
        httpx.Client(transport=transport) as client,
        WebhookSink(URL, client=client, max_attempts=6, backoff=1.0, max_backoff=4.0,
                    sleep=sleeps.append, jitter=lambda: next(draws)) as sink,
    ):  # fmt: skip
        assert sink.send(ALERT) is False

    assert sleeps == pytest.approx([0.5, 1.999, 2.0, 3.998, 3.0], abs=1e-9)


def test_retry_after_is_honoured(
    make_sink: Callable[..., tuple[WebhookSink, Script]], sleeps: list[float]
) -> None:
    sink, _ = make_sink(
        httpx.Response(429, headers={"Retry-After": "7"}),
        httpx.Response(503, headers={"Retry-After": "120"}),
        200,
        max_backoff=60.0,
    )

    assert sink.send(ALERT) is True
    assert sleeps == [7.0, 60.0]  # capped at max_backoff


def test_gives_up_after_max_attempts_logs_and_counts(
    make_sink: Callable[..., tuple[WebhookSink, Script]],
    sleeps: list[float],
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink, script = make_sink(*[503] * 10, max_attempts=3)

    with caplog.at_level(logging.INFO):
        assert sink.send(ALERT) is False
        assert sink.send(ALERT) is False

    assert len(script.requests) == 6 and len(sleeps) == 4
    assert (sink.delivered, sink.failed, sink.retries) == (0, 2, 4)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2
    assert "giving up on alert churn:slow: FIRING after 3 attempts: HTTP 503" in errors[0]
    assert all("very-secret" not in r.getMessage() for r in caplog.records)


def test_client_errors_are_not_retried(
    make_sink: Callable[..., tuple[WebhookSink, Script]], sleeps: list[float]
) -> None:
    sink, script = make_sink(404)

    assert sink.send(ALERT) is False
    assert len(script.requests) == 1 and sleeps == []
    assert sink.failed == 1


def test_httpx_request_logs_do_not_show_the_url(
    make_sink: Callable[..., tuple[WebhookSink, Script]], caplog: pytest.LogCaptureFixture
) -> None:
    sink, _ = make_sink(503, 200)

    with caplog.at_level(logging.DEBUG):
        sink.send(ALERT)

    messages = [r.getMessage() for r in caplog.records]
    assert any("hooks.example.com" in m for m in messages)
    assert all("very-secret" not in m for m in messages)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        WebhookSink(URL, max_attempts=0)
    with pytest.raises(ValueError, match="http"):
        WebhookSink("ftp://example.com/x")


def test_payload_is_strict_json() -> None:
    body = webhook_payload(ALERT)

    assert json.loads(json.dumps(body, allow_nan=False)) == body
    assert body["kind"] == "alert" and body["text"]


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("0", 0.0), (" 30 ", 30.0), ("Thu, 01 Jan 1970 00:01:40 GMT", 90.0),
     ("Thu, 01 Jan 1970 00:00:01 GMT", 0.0), ("-5", None), ("later", None), (None, None)],
)  # fmt: skip
def test_retry_after_seconds(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(header, now=datetime.fromtimestamp(10, UTC)) == seconds


def test_redact_url_hides_path_query_and_credentials() -> None:
    assert redact_url("https://user:pw@hooks.example.com:8443/a/b?token=x") == (
        "https://hooks.example.com:8443/..."
    )
