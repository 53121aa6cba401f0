"""``shadow-eval alerts tail``: print alerts and verdicts, optionally POST them to a webhook."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Iterator

import click
from rich.console import Console

from streams.alerts import (
    AlertRecord,
    AlertSubscription,
    SubscribeError,
    WebhookSink,
    redact_url,
    render_line,
    subscribe,
    to_dict,
)
from streams.cli.options import kafka_options, settings_from

__all__ = ["alerts"]

log = logging.getLogger(__name__)


@click.group()
def alerts() -> None:
    """Read the alerts topic."""


def _show(record: AlertRecord, console: Console | None) -> None:
    if console is None:
        sys.stdout.write(json.dumps(to_dict(record), allow_nan=False) + "\n")
        sys.stdout.flush()
    else:
        console.print(render_line(record))


@alerts.command()
@kafka_options
@click.option("-f", "--follow", is_flag=True, help="Keep waiting for new records.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--experiment", metavar="NAME", help="Only this experiment's records.")
@click.option(
    "--from-beginning/--latest",
    default=True,
    show_default=True,
    help="Start at the oldest retained record, or only show new ones.",
)
@click.option("--verdicts/--no-verdicts", default=True, show_default=True,
              help="Also show promotion verdicts.")  # fmt: skip
@click.option(
    "--webhook",
    metavar="URL",
    help="Also POST each record here (Slack-compatible) [env SHADOW_ALERTS_WEBHOOK_URL"
    " or SHADOW_ALERTS_WEBHOOK_URL_FILE: keeps the token out of `ps`].",
)
@click.option("--webhook-attempts", type=click.IntRange(min=1), default=5, show_default=True,
              help="Attempts per record before giving it up.")  # fmt: skip
@click.option("--timeout", type=click.FloatRange(min=0), default=None,
              help="Stop after this many seconds.")  # fmt: skip
def tail(
    bootstrap: str | None,
    topic_prefix: str | None,
    follow: bool,
    as_json: bool,
    experiment: str | None,
    from_beginning: bool,
    verdicts: bool,
    webhook: str | None,
    webhook_attempts: int,
    timeout: float | None,
) -> None:
    """Print alerts (and verdicts) from the alerts topic, one per line.

    Without --follow, stops at the end of the topic. Undecodable messages are logged
    and skipped. SIGINT / SIGTERM stop cleanly.
    """
    settings = settings_from(bootstrap, topic_prefix)
    if webhook is None and settings.alerts_webhook_url is not None:
        webhook = settings.alerts_webhook_url.get_secret_value()
    console = None if as_json else Console(highlight=False, soft_wrap=True)
    try:
        sink = WebhookSink(webhook, max_attempts=webhook_attempts) if webhook else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--webhook") from None
    try:
        subscription = subscribe(
            settings,
            follow=follow,
            experiment=experiment,
            from_beginning=from_beginning,
            include_verdicts=verdicts,
            timeout=timeout,
        )
    except SubscribeError as exc:
        if sink is not None:
            sink.close()
        raise click.ClickException(str(exc)) from None
    with _sigterm_interrupts():
        try:
            _pump(subscription, console, sink)
        except SubscribeError as exc:
            raise click.ClickException(str(exc)) from None


def _pump(
    subscription: AlertSubscription, console: Console | None, sink: WebhookSink | None
) -> None:
    """Show (and POST) every record until the subscription ends or is interrupted."""
    try:
        with subscription:
            for record in subscription:
                _show(record, console)
                if sink is not None:
                    sink.send(record)
    except KeyboardInterrupt:
        pass
    finally:
        if sink is not None:
            sink.close()
            log.info(
                "webhook %s: %d delivered, %d given up",
                redact_url(sink.url),
                sink.delivered,
                sink.failed,
            )
        if subscription.skipped:
            log.warning("skipped %d undecodable message(s)", subscription.skipped)


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM stops the tail like Ctrl-C (a container's PID 1 ignores it otherwise)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
