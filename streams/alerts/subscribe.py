"""Read alerts and verdicts from the alerts topic as decoded records.

Every subscriber sees every record: partitions are *assigned* (no consumer-group
rebalance) under a throw-away group id, and no offset is ever committed. Order is Kafka's:
per partition, so the states of one alert (keyed by ``dedup_key``) and the verdicts of one
experiment (keyed by experiment) arrive in the order they were published.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from streams.alerts.format import AlertRecord
from streams.codec import Codec, CodecError, RegistryError
from streams.codec import codec_for as registry_codec
from streams.kafka.clients import CONFLUENT
from streams.kafka.config import reader_config
from streams.kafka.problems import explain
from streams.kafka.problems import metadata as list_metadata
from streams.records import Alert, Verdict
from streams.settings import Settings

__all__ = ["AlertSubscription", "SubscribeError", "codec_for", "subscribe"]

log = logging.getLogger(__name__)

OFFSET_BEGINNING = -2  # librdkafka's logical offset, as confluent_kafka.OFFSET_BEGINNING


class SubscribeError(RuntimeError):
    """The alerts topic cannot be read (missing topic, unreachable or fatal broker error)."""


def codec_for(settings: Settings) -> Codec:
    """The codec of ``settings``: Schema Registry ids when a registry URL is set (it only
    reads, so it registers nothing)."""
    try:
        return registry_codec(settings, register=False)
    except RegistryError as exc:
        raise SubscribeError(str(exc)) from None


@dataclass(slots=True)
class _Progress:
    """Where a non-follow subscription stops: each partition's high watermark at start."""

    ends: dict[int, int]
    done: set[int]

    def see(self, partition: int, offset: int) -> None:
        if offset >= self.ends.get(partition, 0) - 1:
            self.done.add(partition)

    @property
    def finished(self) -> bool:
        return self.done >= self.ends.keys()


class AlertSubscription:
    """An iterator over the alerts topic; a context manager that closes its consumer.

    Prefer :func:`subscribe`, which takes the same arguments.

    Parameters
    ----------
    settings
        Broker, security and topic names (``settings.topics.alerts``).
    follow
        Keep waiting for new records; otherwise stop at the end of the topic as it was
        when the subscription started.
    experiment
        Only records of this experiment.
    from_beginning
        Start at the oldest retained record; otherwise only records published after the
        subscription started.
    include_verdicts
        Also yield :class:`~streams.records.Verdict` records.
    timeout
        Stop after this many seconds in all (``None``: no limit).
    codec
        The decoder; :func:`codec_for` ``(settings)`` by default.
    metadata_timeout
        Seconds to wait for the topic's metadata and watermarks.

    Attributes
    ----------
    skipped
        Messages that could not be decoded; each one is logged with its offset.

    Examples
    --------
    >>> with AlertSubscription(settings, experiment="churn-v2") as alerts:  # doctest: +SKIP
    ...     for alert in alerts:
    ...         print(alert.state, alert.rule)
    """

    def __init__(
        self,
        settings: Settings,
        *,
        follow: bool = False,
        experiment: str | None = None,
        from_beginning: bool = True,
        include_verdicts: bool = False,
        timeout: float | None = None,
        codec: Codec | None = None,
        metadata_timeout: float = 10.0,
        poll_interval: float = 0.5,
    ) -> None:
        self.topic = settings.topics.alerts
        self._bootstrap = settings.kafka_bootstrap
        self.follow = follow
        self.experiment = experiment
        self.include_verdicts = include_verdicts
        self.skipped = 0
        self._codec = codec or codec_for(settings)
        self._poll_interval = poll_interval
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._closed = False
        self._consumer = CONFLUENT.consumer(
            reader_config(
                settings,
                "alerts",
                overrides={"enable.partition.eof": True, "auto.offset.reset": "earliest"},
            )
        )
        try:
            self._progress = self._assign(from_beginning, metadata_timeout)
        except BaseException:
            self.close()
            raise

    def _assign(self, from_beginning: bool, timeout: float) -> _Progress:
        try:
            metadata = list_metadata(self._consumer, self._bootstrap, timeout, self.topic)
        except KafkaException as exc:
            why = explain(self._bootstrap, exc, self._consumer)
            raise SubscribeError(f"cannot read metadata of {self.topic!r}: {why}") from None
        topic = metadata.topics.get(self.topic)
        if (
            topic is not None
            and topic.error is not None
            and topic.error.code()
            in (
                KafkaError.TOPIC_AUTHORIZATION_FAILED,
                KafkaError.GROUP_AUTHORIZATION_FAILED,
            )
        ):
            raise SubscribeError(
                f"not authorized to read topic {self.topic!r} ({topic.error.name()}): this "
                "principal needs Read and Describe on it (`shadow-eval acls print --role alerts`)"
            )
        if topic is None or topic.error is not None or not topic.partitions:
            raise SubscribeError(
                f"alerts topic {self.topic!r} does not exist "
                f"({topic.error if topic is not None else 'no metadata'}); "
                "create it with `shadow-eval topics create`"
            )
        ends: dict[int, int] = {}
        done: set[int] = set()
        assignment = []
        for partition in sorted(topic.partitions):
            try:
                low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(self.topic, partition), timeout=timeout
                )
            except KafkaException as exc:
                raise SubscribeError(f"no watermarks for {self.topic}[{partition}]: {exc}") from exc
            ends[partition] = high
            if high <= low or not from_beginning:
                done.add(partition)
            # Explicit end offsets (not OFFSET_END) so nothing published after this call
            # can slip past a --latest subscriber while its fetch starts.
            start = OFFSET_BEGINNING if from_beginning else high
            assignment.append(TopicPartition(self.topic, partition, start))
        self._consumer.assign(assignment)
        return _Progress(ends, done)

    def __iter__(self) -> Iterator[AlertRecord]:
        return self

    def __next__(self) -> AlertRecord:
        while not self._closed:
            if not self.follow and self._progress.finished:
                break
            wait = self._poll_interval
            if self._deadline is not None:
                wait = min(wait, self._deadline - time.monotonic())
                if wait <= 0:
                    self._stop_early()
                    break
            message = self._consumer.poll(wait)
            if message is None:
                continue
            record = self._handle(message)
            if record is not None:
                return record
        self.close()
        raise StopIteration

    def _stop_early(self) -> None:
        if not self.follow and not self._progress.finished:
            log.warning("%s: timeout before the end of the topic", self.topic)

    def _handle(self, message: Message) -> AlertRecord | None:
        error = message.error()
        partition, offset = message.partition(), message.offset()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                if partition is not None:
                    self._progress.done.add(partition)
                return None
            if error.fatal():
                raise SubscribeError(f"fatal error reading {self.topic}: {error}")
            log.warning("%s: %s (retrying)", self.topic, error)
            return None
        if partition is not None and offset is not None:
            self._progress.see(partition, offset)
        try:
            record = self._codec.decode(
                message.value(), topic=self.topic, partition=partition, offset=offset
            )
        except CodecError as exc:
            self.skipped += 1
            log.warning("skipping an undecodable message: %s", exc)
            return None
        return self._wanted(record, partition, offset)

    def _wanted(self, record: Any, partition: int | None, offset: int | None) -> AlertRecord | None:
        if isinstance(record, Verdict) and not self.include_verdicts:
            return None
        if not isinstance(record, Alert | Verdict):
            self.skipped += 1
            log.warning(
                "skipping a %s at %s[%s]@%s: not an Alert or Verdict",
                type(record).__name__,
                self.topic,
                partition,
                offset,
            )
            return None
        if self.experiment is not None and record.experiment != self.experiment:
            return None
        return record

    def close(self) -> None:
        """Close the consumer (idempotent); iteration then stops."""
        if not self._closed:
            self._closed = True
            self._consumer.close()

    def __enter__(self) -> AlertSubscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def subscribe(
    settings: Settings,
    *,
    follow: bool = False,
    experiment: str | None = None,
    from_beginning: bool = True,
    include_verdicts: bool = False,
    timeout: float | None = None,
    codec: Codec | None = None,
) -> AlertSubscription:
    """Iterate over decoded alerts (and verdicts when asked) on ``settings.topics.alerts``.

    Undecodable messages are logged and skipped, never raised; see
    :class:`AlertSubscription` for the arguments. The consumer closes when the iteration
    ends; use the result as a context manager to close it when you break out early.

    Examples
    --------
    >>> for alert in subscribe(settings, follow=True, experiment="churn-v2"):  # doctest: +SKIP
    ...     page_someone(alert) if alert.severity == "critical" else None
    """
    return AlertSubscription(
        settings,
        follow=follow,
        experiment=experiment,
        from_beginning=from_beginning,
        include_verdicts=include_verdicts,
        timeout=timeout,
        codec=codec,
    )
