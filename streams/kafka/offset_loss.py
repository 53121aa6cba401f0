"""Consumer offsets that fell out of retention: counted and alerted, never skipped silently.

The shadow worker and both join stages consume with ``auto.offset.reset=error``. Where
librdkafka would otherwise jump to the log start without a word, it hands them an
``_AUTO_OFFSET_RESET`` event, which :meth:`OffsetLoss.handle` turns into:

- no committed offset (a new group): start where the group starts (``earliest`` or
  ``latest``); nothing is lost;
- an offset below the log start (retention or ``delete_records`` removed records before
  the group read them, e.g. an outage longer than the topic's retention): the gap is
  counted (``on_lost``: the component's Prometheus counter), logged as an error and
  published as a ``data_loss`` alert (FIRING, critical) on the alerts topic; reading
  resumes at the log start;
- an offset past the log end twice in a row (a log truncated by an unclean leader
  election; once may be a new leader's lagging high watermark: retried): logged and
  alerted; reading resumes at the end.

A gap is counted once per process, even when the consumer is sent back into it (an
aborted transaction's rewind, a rebalance) before its group commits past it. librdkafka
leaves the partition stopped (a seek fails) until it is assigned again
(confluentinc/librdkafka#2961), so the partition is reassigned at its new offset:
incrementally under the cooperative protocol, otherwise the whole assignment at the
positions read so far.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Literal

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, KafkaError, KafkaException, TopicPartition

from streams.codec import Codec
from streams.kafka.clients import CONFLUENT, ConsumerLike, KafkaClients, MessageLike
from streams.kafka.config import producer_config
from streams.kafka.producer import ProducerWrapper
from streams.records import Alert, AlertState, MetricResult
from streams.settings import Settings

__all__ = ["LOSS_RULE", "OffsetLoss", "loss_alert"]

log = logging.getLogger(__name__)

LOSS_RULE = "data_loss"
"""The ``rule`` of the alerts this module publishes."""
ALERT_DELIVERY_S = 5.0


def loss_alert(
    component: str, experiment: str, topic: str, partition: int, first: int, end: int, now_ms: int
) -> Alert:
    """The alert of records ``first`` to ``end - 1`` of ``topic[partition]`` lost unread
    (``end < first``: the log was truncated below ``first``).

    Examples
    --------
    >>> alert = loss_alert("worker", "", "shadow.inputs", 2, 10, 40, 0)
    >>> alert.rule, alert.severity, alert.result.n, alert.dedup_key
    ('data_loss', 'critical', 30, 'data_loss:worker:shadow.inputs:2:10')
    """
    if end >= first:
        lost = end - first
        what = (f"{lost} records of {topic}[{partition}] (offsets {first} to {end - 1}) were "
                f"deleted (retention) before {component} read them")  # fmt: skip
    else:
        lost = 0
        what = (f"{topic}[{partition}] was truncated to offset {end}, below {component}'s "
                f"offset {first} (unclean leader election?): records it had not read may "
                f"be lost")  # fmt: skip
    return Alert(
        dedup_key=":".join(
            str(part)
            for part in (LOSS_RULE, component, experiment, topic, partition, first)
            if part != ""
        ),
        state=AlertState.FIRING,
        experiment=experiment,
        rule=LOSS_RULE,
        severity="critical",
        direction="lost",
        result=MetricResult("lost_records", "offset_out_of_range", lost),
        message=what,
        timestamp_ms=now_ms,
    )


class OffsetLoss:
    """Handles the offset-reset events of one consumer (see the module).

    Parameters
    ----------
    settings
        Broker and topic names (the alerts go to the alerts topic).
    component
        Names the consumer in logs and alerts (``"worker churn@v2"``, ``"join stage 1"``).
    on_lost
        Called with ``(topic, records)`` for every gap counted.
    codec
        Encodes the alerts.
    start
        Where a partition without a committed offset starts.
    cooperative
        The consumer uses the cooperative rebalance protocol (incremental assignment).
    experiments
        The experiments a partition's records belong to (one alert each); none: one
        alert with an empty ``experiment``.
    paused
        Whether the consumer's whole assignment is paused now (join stage 1 while it
        restores its stores): a reassignment keeps it paused.
    clients
        Where the alerts' producer comes from (made at the first alert).
    """

    def __init__(
        self,
        settings: Settings,
        component: str,
        on_lost: Callable[[str, int], object],
        codec: Codec,
        *,
        start: Literal["earliest", "latest"] = "earliest",
        cooperative: bool = False,
        experiments: Callable[[int], Iterable[str]] | None = None,
        paused: Callable[[], bool] | None = None,
        clients: KafkaClients = CONFLUENT,
    ) -> None:
        self.settings = settings
        self.component = component
        self.codec = codec
        self.start = OFFSET_END if start == "latest" else OFFSET_BEGINNING
        self.cooperative = cooperative
        self.lost: Counter[str] = Counter()
        """Records lost so far, by topic."""
        self.alerts = 0
        self._on_lost = on_lost
        self._experiments = experiments
        self._paused = paused
        self._clients = clients
        self._counted: dict[tuple[str, int], int] = {}
        """The offset up to which a partition's gap was counted."""
        self._producer: ProducerWrapper | None = None
        self._past_end: dict[tuple[str, int], int] = {}
        """A partition's offset found past the log end once (truncated if twice)."""

    def handle(self, consumer: ConsumerLike, message: MessageLike) -> bool:
        """Whether ``message`` was an offset-reset event (then it is handled)."""
        error = message.error()
        if error is None or error.code() != KafkaError._AUTO_OFFSET_RESET:
            return False
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        assert topic is not None and partition is not None
        start = self.start  # no committed offset
        if offset is not None and offset >= 0:
            start = offset  # in range again (a leader change): retried there
            try:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=10
                )
            except KafkaException as exc:  # then the same offset again: a new event
                log.warning("%s: cannot read the offsets of %s[%d]: %s",
                            self.component, topic, partition, exc)  # fmt: skip
                low = high = offset
            if offset < low:
                self.gap(topic, partition, offset, low)
                start = low
            elif offset > high and self._past_end.pop((topic, partition), None) == offset:
                self._publish(topic, partition, offset, high)  # twice: truncated
                start = high
            elif offset > high:  # a new leader's high watermark may lag: once more first
                self._past_end[(topic, partition)] = offset
        try:
            self._reassign(consumer, TopicPartition(topic, partition, start))
        except KafkaException as exc:  # a rebalance under way: its assignment restarts it
            log.warning("%s: cannot restart %s[%d] at %d: %s",
                        self.component, topic, partition, start, exc)  # fmt: skip
        return True

    def gap(self, topic: str, partition: int, first: int, end: int) -> int:
        """Count, log and alert records ``first`` to ``end - 1`` lost unread (the part not
        counted yet); returns how many were newly counted."""
        where = (topic, partition)
        counted = self._counted.get(where, first)
        lost = end - max(first, counted)
        self._counted[where] = max(end, counted)
        if lost <= 0:
            return 0
        self.lost[topic] += lost
        self._on_lost(topic, lost)
        self._publish(topic, partition, max(first, counted), end)
        return lost

    def _publish(self, topic: str, partition: int, first: int, end: int) -> None:
        now_ms = int(time.time() * 1000)
        names = list(self._experiments(partition)) if self._experiments else []
        alerts = [loss_alert(self.component, name, topic, partition, first, end, now_ms)
                  for name in names or [""]]  # fmt: skip
        log.error("%s (alerted: rule %s)", alerts[0].message, LOSS_RULE)
        if self._producer is None:
            self._producer = ProducerWrapper(
                producer_config(self.settings), log=log, clients=self._clients
            )
        for alert in alerts:
            self._producer.produce(
                self.settings.topics.alerts, self.codec.encode(alert), alert.dedup_key.encode()
            )
        self.alerts += len(alerts)
        if self._producer.flush(ALERT_DELIVERY_S):
            log.warning("%s: the data-loss alert is not delivered yet", self.component)

    def _reassign(self, consumer: ConsumerLike, target: TopicPartition) -> None:
        """Restart the stopped partition at ``target.offset``; every other partition goes
        on from the position read so far (else from where it was assigned)."""
        if self.cooperative:
            consumer.incremental_unassign([TopicPartition(target.topic, target.partition)])
            consumer.incremental_assign([target])
            return
        assigned = consumer.assignment()
        positions = consumer.position(assigned)
        moved = []
        for at, position in zip(assigned, positions, strict=True):
            if (at.topic, at.partition) == (target.topic, target.partition):
                moved.append(target)
            else:
                offset = position.offset if position.offset >= 0 else at.offset
                moved.append(TopicPartition(at.topic, at.partition, offset))
        consumer.assign(moved)  # (which resumes every partition)
        if self._paused is not None and self._paused():
            consumer.pause(moved)
