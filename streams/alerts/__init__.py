"""Subscribe to shadow-eval's alerts and verdicts: an iterator, a formatter, a webhook sink.

>>> from streams.alerts import subscribe, WebhookSink  # doctest: +SKIP
>>> with WebhookSink(url) as sink:  # doctest: +SKIP
...     for alert in subscribe(settings, follow=True, experiment="churn-v2"):
...         sink.send(alert)

``shadow-eval alerts tail`` is the command line over the same pieces.
"""

from streams.alerts.format import (
    AlertRecord,
    format_line,
    render_line,
    result_summary,
    slack_text,
    to_dict,
)
from streams.alerts.subscribe import AlertSubscription, SubscribeError, codec_for, subscribe
from streams.alerts.webhook import WebhookSink, redact_url, retry_after_seconds, webhook_payload

__all__ = [
    "AlertRecord",
    "AlertSubscription",
    "SubscribeError",
    "WebhookSink",
    "codec_for",
    "format_line",
    "redact_url",
    "render_line",
    "result_summary",
    "retry_after_seconds",
    "slack_text",
    "subscribe",
    "to_dict",
    "webhook_payload",
]
