"""POST alerts and verdicts to a webhook (Slack-compatible), retrying with backoff.

A failed delivery is logged and counted, never raised: the tail that feeds the sink
keeps going. The URL of a chat webhook is a secret, so logs show only its scheme and host.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx

from streams.alerts.format import AlertRecord, slack_text, to_dict
from streams.records import Alert

__all__ = ["WebhookSink", "redact_url", "retry_after_seconds", "webhook_payload"]

log = logging.getLogger(__name__)


class _RedactSecretUrls(logging.Filter):
    """Rewrites webhook URLs in httpx's request log lines (it logs them whole at INFO)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.urls and isinstance(record.args, tuple):
            record.args = tuple(
                redact_url(str(arg)) if str(arg) in self.urls else arg for arg in record.args
            )
        return True


_REDACT = _RedactSecretUrls()
logging.getLogger("httpx").addFilter(_REDACT)


def webhook_payload(record: AlertRecord) -> dict[str, Any]:
    """The JSON body: Slack's ``text`` (one human line) plus the fields of ``to_dict``.

    Examples
    --------
    >>> from streams.records import Decision, Verdict
    >>> body = webhook_payload(Verdict("churn", Decision.PROMOTE, "better and safe", 0))
    >>> body["text"], body["kind"], body["decision"]
    (':rocket: *VERDICT PROMOTE* churn - better and safe', 'verdict', 'PROMOTE')
    """
    return {"text": slack_text(record), **to_dict(record)}


def redact_url(url: str) -> str:
    """``scheme://host[:port]/...``: enough to tell webhooks apart, no token.

    Examples
    --------
    >>> redact_url("https://hooks.slack.com/services/T000/B000/XXXX")
    'https://hooks.slack.com/...'
    """
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/..."


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (delta-seconds or HTTP date).

    Examples
    --------
    >>> retry_after_seconds("7")
    7.0
    >>> retry_after_seconds("Thu, 01 Jan 1970 00:00:10 GMT", now=datetime.fromtimestamp(4, UTC))
    6.0
    >>> retry_after_seconds("soon") is None
    True
    """
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class WebhookSink:
    """Delivers each record as one JSON POST, retrying transient failures.

    Connection errors, timeouts, HTTP 5xx and 429 are retried with exponential backoff
    and jitter (a ``Retry-After`` header wins over the backoff); other statuses are final.
    After ``max_attempts`` the record is given up: an error is logged and ``failed`` grows.

    Parameters
    ----------
    url
        Where to POST, e.g. a Slack incoming-webhook URL.
    max_attempts
        Attempts per record, the first included (>= 1).
    backoff
        Base delay in seconds: attempt ``k`` waits up to ``backoff * 2 ** (k - 1)``, at
        least half of that (equal jitter), capped at ``max_backoff``.
    max_backoff
        Longest wait between two attempts, ``Retry-After`` included.
    timeout
        Seconds for one HTTP request.
    headers
        Extra request headers (e.g. an ``Authorization``).
    client
        An ``httpx.Client`` to use (not closed by the sink); one of its own by default.
    sleep, jitter
        Injected for tests: how to wait, and a source of numbers in [0, 1).

    Attributes
    ----------
    delivered, failed, retries
        Records delivered, records given up, and retried attempts.

    Examples
    --------
    >>> import httpx
    >>> from streams.records import Decision, Verdict
    >>> seen = []
    >>> def app(request):
    ...     seen.append(request)
    ...     return httpx.Response(503 if len(seen) == 1 else 200)
    >>> client = httpx.Client(transport=httpx.MockTransport(app))
    >>> with WebhookSink("http://hooks.test/x", client=client, sleep=lambda s: None) as sink:
    ...     sink.send(Verdict("churn", Decision.CONTINUE, "too few samples", 0))
    True
    >>> sink.delivered, sink.retries, len(seen)
    (1, 1, 2)
    """

    def __init__(
        self,
        url: str,
        *,
        max_attempts: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 60.0,
        timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"webhook URL must be http(s)://..., got {redact_url(url)}")
        self.url = url
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.delivered = 0
        self.failed = 0
        self.retries = 0
        self._where = redact_url(url)
        _REDACT.urls.add(str(httpx.URL(url)))
        self._headers = dict(headers or {})
        self._own_client = client is None
        self._client = client or httpx.Client(timeout=timeout)
        self._sleep = sleep
        self._jitter = jitter

    def send(self, record: AlertRecord) -> bool:
        """POST one record; ``True`` once delivered, ``False`` when given up (logged)."""
        body = webhook_payload(record)
        problem = ""
        for attempt in range(1, self.max_attempts + 1):
            if attempt > 1:
                self.retries += 1
            try:
                response = self._client.post(self.url, json=body, headers=self._headers)
            except httpx.TransportError as exc:
                problem, wait = f"{type(exc).__name__}: {exc}", None
            else:
                if response.is_success:
                    self.delivered += 1
                    return True
                problem = f"HTTP {response.status_code}"
                if response.status_code != 429 and response.status_code < 500:
                    break  # the request itself is wrong: retrying will not help
                wait = retry_after_seconds(response.headers.get("Retry-After"))
            if attempt < self.max_attempts:
                delay = self._delay(attempt, wait)
                log.info("webhook %s: %s; retry %d in %.2fs", self._where, problem, attempt, delay)
                self._sleep(delay)
        self.failed += 1
        log.error(
            "webhook %s: giving up on %s after %s: %s",
            self._where,
            _describe(record),
            f"{attempt} attempt{'s' if attempt > 1 else ''}",
            problem,
        )
        return False

    __call__ = send

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_backoff)
        ceiling = min(self.max_backoff, self.backoff * 2.0 ** (attempt - 1))
        return ceiling / 2 + self._jitter() * ceiling / 2

    def close(self) -> None:
        """Close the HTTP client if the sink made it."""
        if self._own_client:
            self._client.close()

    def __enter__(self) -> WebhookSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _describe(record: AlertRecord) -> str:
    if isinstance(record, Alert):
        return f"alert {record.dedup_key} {record.state.value}"
    return f"verdict {record.experiment} {record.decision.value}"
