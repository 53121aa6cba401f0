"""``shadow-eval actions``: run ``on_promote`` / ``on_reject`` when a verdict changes.

Reads the alerts topic from its beginning: verdicts, and the outcomes of earlier actions
(alerts whose ``dedup_key`` is the action's key, see :attr:`Action.key`). Once caught
up with the topic as it was at start, the latest verdict of each experiment triggers
its actions that are not done yet; so does every later verdict. Each action runs once
per experiment and decision: a restart, a re-published verdict or a second runner that
has read the first one's outcomes does not repeat it. A failed action is published as
failed and tried again at the next verdict of that decision (or restart).

Outcomes go to the alerts topic as :class:`~streams.records.Alert` records (rule
``on_promote:mlflow``, direction ``done`` / ``dry_run`` / ``failed``, the message says
what happened), so ``shadow-eval alerts tail`` and every subscriber see them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import httpx
from confluent_kafka import TopicPartition

from streams.actions.config import Action, parse_mlflow_target
from streams.actions.mlflow import MLflowError, set_alias
from streams.alerts.webhook import WebhookSink
from streams.codec import Codec, CodecError
from streams.kafka import CONFLUENT, KafkaClients, ProducerWrapper
from streams.kafka.config import producer_config, reader_config
from streams.records import Alert, AlertState, MetricResult, Verdict
from streams.settings import Settings

__all__ = ["ActionRunner", "outcome_alert"]

log = logging.getLogger("streams.actions")
OFFSET_BEGINNING = -2
FAILED = "failed"


def outcome_alert(action: Action, ok: bool, message: str, now_ms: int) -> Alert:
    """The alert that records an action's outcome (and, unless failed, that it is done)."""
    direction = FAILED if not ok else ("dry_run" if action.dry_run else "done")
    return Alert(
        dedup_key=action.key,
        state=AlertState.FIRING,
        experiment=action.experiment,
        rule=f"on_{action.decision.value.lower()}:{action.kind}",
        severity="info" if ok else "warning",
        direction=direction,
        result=MetricResult("action", action.kind, 0),
        message=message,
        timestamp_ms=now_ms,
    )


class ActionRunner:
    """Runs the actions of verdict changes, once each, and publishes their outcomes.

    Parameters
    ----------
    settings
        Broker and topic names (the alerts topic is read and written).
    actions
        From :func:`streams.actions.config.actions_of`.
    clients
        Where the Kafka clients come from.
    http
        The HTTP client of MLflow calls (and webhooks); one of its own by default.
    """

    def __init__(
        self,
        settings: Settings,
        actions: Sequence[Action],
        *,
        clients: KafkaClients = CONFLUENT,
        http: httpx.Client | None = None,
        webhook_attempts: int = 3,
    ) -> None:
        self.settings, self.actions, self.clients = settings, list(actions), clients
        self.codec = Codec()
        self._own_http = http is None
        self.http = http or httpx.Client(timeout=10.0)
        self.webhook_attempts = webhook_attempts
        self.done: set[str] = set()
        self.outcomes: list[Alert] = []
        """Every outcome this runner published, in order."""
        self._pending: dict[str, Verdict] = {}

    def close(self) -> None:
        """Close the HTTP client the runner made (not one it was given)."""
        if self._own_http:
            self.http.close()

    # -- deciding --------------------------------------------------------------------------
    def observe(self, record: Any) -> None:
        """Take one record of the alerts topic: an earlier outcome or a verdict."""
        if isinstance(record, Alert) and record.dedup_key.startswith("action:"):
            if record.direction != FAILED:
                self.done.add(record.dedup_key)
        elif isinstance(record, Verdict):
            self._pending[record.experiment] = record

    def act(self, publish: Any) -> int:
        """Run the not-yet-done actions of the verdicts seen since the last call; how many
        ran. ``publish(alert)`` sends each outcome."""
        ran = 0
        pending, self._pending = self._pending, {}
        for verdict in pending.values():
            for action in self.actions:
                if (action.experiment, action.decision) != (verdict.experiment, verdict.decision):
                    continue
                if action.key in self.done:
                    continue
                ok, message = self.execute(action, verdict)
                alert = outcome_alert(action, ok, message, int(time.time() * 1000))
                if ok:
                    self.done.add(action.key)
                self.outcomes.append(alert)
                publish(alert)
                log.info("%s %s: %s", action.experiment, alert.rule, message)
                ran += 1
        return ran

    def execute(self, action: Action, verdict: Verdict) -> tuple[bool, str]:
        """Run one action; ``(ok, what happened)``, never raises."""
        if action.kind == "webhook":
            sink = WebhookSink(action.target, max_attempts=self.webhook_attempts,
                               client=self.http)  # fmt: skip
            delivered = sink.send(verdict)
            return delivered, "webhook delivered" if delivered else "webhook failed (see log)"
        name, alias = parse_mlflow_target(action.target)
        try:
            text = set_alias(self.http, action.tracking_uri, name, alias, action.version,
                             dry_run=action.dry_run)  # fmt: skip
        except MLflowError as exc:
            return False, str(exc)
        return True, text

    # -- the loop --------------------------------------------------------------------------
    def run(self, stop: threading.Event, poll: float = 0.5) -> None:
        """Read the alerts topic and act until ``stop`` is set."""
        topic = self.settings.topics.alerts
        consumer = self.clients.consumer(
            reader_config(self.settings, "actions", overrides={"auto.offset.reset": "earliest"})
        )
        producer = ProducerWrapper(producer_config(self.settings), log=log, clients=self.clients)

        def publish(alert: Alert) -> None:
            producer.produce(topic, self.codec.encode(alert), alert.experiment.encode())
            producer.flush(10.0)

        try:
            ends = self._assign(consumer, topic)
            caught_up = not ends
            while not stop.is_set():
                for message in consumer.consume(500, poll):
                    if message.error() is not None:
                        continue
                    try:
                        self.observe(self.codec.decode(message.value()))
                    except CodecError as exc:
                        log.warning("skipping an undecodable record of %s: %s", topic, exc)
                    partition = message.partition()
                    if partition in ends and message.offset() >= ends[partition] - 1:
                        del ends[partition]
                caught_up = caught_up or not ends
                if caught_up:
                    self.act(publish)
        finally:
            producer.flush(10.0)
            consumer.close()
            self.close()

    def _assign(self, consumer: Any, topic: str) -> dict[int, int]:
        """Assign every partition from its beginning; the end offsets still to reach."""
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = metadata.topics[topic].partitions if topic in metadata.topics else {}
        if not partitions:
            raise RuntimeError(f"topic {topic!r} does not exist (run `shadow-eval topics create`)")
        ends: dict[int, int] = {}
        for partition in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)
            if high > low:
                ends[partition] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        return ends
