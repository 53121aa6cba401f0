"""Join stage 2 on Kafka: judge each experiment (:class:`Judge`) over its join events.

The state is a fold over the join-events topic. After every rebalance of the
``<app_id>-<prefix>-judge`` group each partition this worker owns resumes from its
checkpoint (:mod:`streams.join.checkpoints`: written every ``checkpoint_every_s``, when
a partition is revoked and at shutdown), or is re-read from its beginning when it has
none; snapshots, alerts and verdicts go out only once every partition has caught up.
Stage 1 commits events exactly once (Kafka transactions) and this consumer reads
committed events only, so the judge keeps no set of seen events. The group's committed
offsets are those of the last checkpoint (or the log start, once events deleted below it
were counted: :func:`unjudged_from`): they show its lag (``shadow-eval status``) and
where the events no owner judged begin; they are never where it resumes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    KafkaError,
    KafkaException,
    TopicCollection,
    TopicPartition,
)

from streams.codec import CodecError, codec_for
from streams.join.checkpoints import Checkpoint, Checkpoints
from streams.join.experiments import ExperimentsFile
from streams.join.judge import Judge
from streams.join.metrics import JoinMetrics
from streams.join.recent import RecentReports
from streams.join.stage_pairs import BATCH_SIZE, LIBRDKAFKA_LOGS, now_ms
from streams.kafka import CONFLUENT, KafkaClients, ProducerWrapper
from streams.kafka.assignment import watermarks
from streams.kafka.clients import MessageLike
from streams.kafka.config import admin_config, group_config, producer_config
from streams.kafka.deadletter import dead_letter, send_dead_letter
from streams.kafka.offset_loss import OffsetLoss
from streams.records import JoinEvent, JoinEventBatch, Record
from streams.settings import Settings
from streams.topics import partition_of

__all__ = ["JudgeStage", "events_of", "unjudged_from"]

log = logging.getLogger(__name__)


def events_of(record: Record) -> tuple[JoinEvent, ...]:
    """The join events of a ``<prefix>.join.events`` record: a JoinEventBatch, or a
    single JoinEvent as stage 1 wrote them before batches (so a topic written by an
    earlier version is still read).

    Examples
    --------
    >>> from streams.records import JoinKind
    >>> event = JoinEvent(JoinKind.EXPIRED, "e", "r1", 0, None, None, reason="no_live")
    >>> events_of(JoinEventBatch((event, event))) == events_of(event) * 2
    True
    """
    kind = type(record)
    if kind is JoinEventBatch:
        return record.events  # type: ignore[union-attr]
    if kind is JoinEvent:
        return (record,)  # type: ignore[return-value]
    raise CodecError(f"expected a JoinEventBatch or JoinEvent, got {kind.__name__}")


def unjudged_from(checkpoint: int | None, committed: int | None) -> int | None:
    """The offset of a partition's first join event that no owner has judged (or counted
    as lost): events from there up to the log start were deleted unjudged.

    Stage 2 commits offsets only with a checkpoint it wrote, or the log start right after
    counting the events deleted below it. So the group's ``committed`` offset, whoever
    wrote it, says every event before it was judged or counted; this worker's
    ``checkpoint`` (None: none usable) says the same of the events it folded. The later
    of the two counts, so the same gap is never counted twice: not when both exist, not
    after a restart. None when neither exists (a new group, which starts at the log
    start, loses nothing).

    Examples
    --------
    >>> unjudged_from(None, 40), unjudged_from(70, 40), unjudged_from(30, 40)
    (40, 70, 40)
    >>> unjudged_from(None, None) is None
    True
    """
    known = [offset for offset in (checkpoint, committed) if offset is not None]
    return max(known) if known else None


class JudgeStage:
    """Stage 2 of one worker.

    Parameters
    ----------
    settings
        Broker, topic prefix and partition count.
    experiments
        The parsed experiments file.
    group
        The consumer group.
    metrics
        Prometheus metrics to update.
    data_dir
        Where the checkpoints go (a directory per group under ``judge/``).
    clients
        Where its Kafka clients come from (an in-process fake in unit tests).
    """

    def __init__(
        self,
        settings: Settings,
        experiments: ExperimentsFile,
        group: str,
        metrics: JoinMetrics,
        data_dir: Path,
        *,
        clients: KafkaClients = CONFLUENT,
    ) -> None:
        self.experiments = experiments
        self.topics = settings.topics
        self.partitions = settings.partitions
        self.codec = codec_for(settings)
        self.metrics = metrics
        self.judge = self._new_judge()
        self.latest: dict[str, dict[str, Any]] = {}
        """The last report per experiment this worker owns (the /verdicts/ page)."""
        self.recent = RecentReports()
        """Recent snapshots, alerts and verdicts (the live experiment page)."""
        self.consumer = clients.consumer(group_config(settings, group, logs=LIBRDKAFKA_LOGS))
        self.offset_loss = OffsetLoss(
            settings, "join stage 2", metrics.count_lost, self.codec, clients=clients,
            experiments=lambda partition: self._by_partition.get(partition, ()),
        )  # fmt: skip
        self.reports = ProducerWrapper(
            producer_config(settings, logs=LIBRDKAFKA_LOGS), log=log, clients=clients
        )
        self._owned: set[int] = set()
        self._rebuilding: set[int] = set()
        """Partitions still being re-read after a rebalance."""
        self._committed: dict[int, int] = {}
        """The group's committed offset per partition at assignment (if any): a rebuild
        dead-letters only the bad records from there on (those before it a previous owner
        judged), and counts the events from there to the log start as lost."""
        key = settings.checkpoint_key
        self.checkpoints = Checkpoints(
            data_dir / "judge" / group,
            experiments.experiments,
            key=None if key is None else key.get_secret_value().encode(),
        )
        # Quiet: it only reads the topic's id, and a failure is logged below.
        self._admin = clients.admin(admin_config(settings, quiet=True))
        self._topic_id: str | None = None
        """The join-events topic's Kafka id, read at each assignment (None: unknown)."""
        self._by_partition: dict[int, list[str]] = {}
        for experiment in experiments.experiments:
            partition = partition_of(experiment.name.encode(), self.partitions)
            self._by_partition.setdefault(partition, []).append(experiment.name)

    def _new_judge(self) -> Judge:
        return Judge(self.experiments, dedup=False)

    def start(self) -> None:
        self.consumer.subscribe(
            [self.topics.join_events], on_assign=self._on_assign, on_revoke=self._on_revoke
        )

    def poll(self, timeout: float) -> int:
        """Fold one batch (waiting up to ``timeout`` s for it); returns its size."""
        messages = self.consumer.consume(BATCH_SIZE, timeout)
        if messages:
            self.process(messages)
        self.reports.poll(0)
        return len(messages)

    def close(self) -> None:
        self.checkpoint(wait=True)
        self._owned = set()  # saved: closing revokes them, with nothing more to save
        try:
            self.consumer.close()
        except KafkaException as exc:
            log.warning("join: closing the stage-2 consumer: %s", exc)
        self.reports.flush(10)

    def status(self) -> str:
        rebuilding = " (rebuilding)" if self._rebuilding else ""
        return f"stage 2: partitions {sorted(self._owned)}{rebuilding}"

    def process(self, messages: list[Any]) -> None:
        """Fold a batch of join-event records into the monitors."""
        decode = self.codec.decode
        apply, now = self.judge.apply, now_ms()
        rebuilding = self._rebuilding
        for message in messages:
            partition: int = message.partition()
            offset = message.offset()
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    if not self.offset_loss.handle(self.consumer, message):
                        log.warning("join: consumer error: %s", error)
                elif partition in rebuilding:
                    rebuilding.discard(partition)
                    if not rebuilding:
                        log.info("join: stage 2 rebuilt (partitions %s)", sorted(self._owned))
                continue
            try:
                events = events_of(
                    decode(
                        message.value(),
                        topic=message.topic(),
                        partition=partition,
                        offset=offset,
                    )
                )
            except CodecError as exc:
                if partition not in rebuilding or offset >= self._committed.get(partition, 0):
                    self._report_dead_letter(message, exc.reason)
                continue
            for event in events:
                if not apply(event, now):
                    self.metrics.judged_duplicates.inc()
        skewed = self.judge.clock_skew
        if skewed:  # moved to the Prometheus counter
            self.metrics.count(self.metrics.clock_skew, skewed)
            skewed.clear()
        invalid = self.judge.invalid
        if invalid:
            self.metrics.count(self.metrics.invalid, invalid)
            invalid.clear()

    def _report_dead_letter(self, message: MessageLike, reason: str) -> None:
        self.metrics.dead_lettered.labels("undecodable").inc()
        log.warning("join: dead-lettered %s[%s]@%s: %s", message.topic(), message.partition(),
                    message.offset(), reason)  # fmt: skip
        letter = dead_letter(message, component="join", error_type="undecodable", reason=reason)
        send_dead_letter(self.reports, self.topics.dlq, letter, self.codec)

    def checkpoint(self, partitions: Iterable[int] | None = None, wait: bool = False) -> None:
        """Save the state of the partitions owned (or of ``partitions``) with the offsets
        it folded up to, and commit those offsets (for ``shadow-eval status``).

        A failure is logged, not raised: the next owner of a partition just re-reads
        from an older checkpoint. ``wait``: commit synchronously (at shutdown).
        """
        try:
            self._checkpoint(self._owned if partitions is None else partitions, wait)
        except (KafkaException, OSError, TypeError) as exc:  # TypeError: an unlisted class
            log.warning("join: stage-2 checkpoint failed: %s", exc)

    def _checkpoint(self, owned: Iterable[int], wait: bool) -> None:
        topic, topic_id = self.topics.join_events, self._topic_id
        if topic_id is None:
            return  # a checkpoint must say which topic it folded
        positions = self.consumer.position([TopicPartition(topic, p) for p in sorted(owned)])
        folded = [tp for tp in positions if tp.offset >= 0]  # < 0: nothing read since assign
        changed = self.judge.changed
        for tp in folded:
            names = self._by_partition.get(tp.partition, [])
            states = {name: self.judge.state(name) for name in names}
            self.checkpoints.save(tp.partition, Checkpoint(tp.offset, states, topic_id), changed)
            changed.difference_update(names)
        if folded:
            if wait:
                self.consumer.commit(offsets=folded, asynchronous=False)
            else:
                self.consumer.commit(offsets=folded, asynchronous=True)

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self.checkpoint([tp.partition for tp in partitions if tp.partition in self._owned])
        self._owned = set()
        self._rebuilding = set()

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        """Resume each partition from its checkpoint, or re-read it from the start;
        either way, count the events deleted before any owner judged them."""
        self.judge = self._new_judge()
        self._owned = {tp.partition for tp in partitions}
        self._rebuilding = set()
        self._topic_id = self._read_topic_id()
        self.recent.retain(n for p in self._owned for n in self._by_partition.get(p, ()))
        starts: list[TopicPartition] = []
        lost: list[TopicPartition] = []  # log starts below which a loss was just counted
        backlog = 0
        self._committed = self._committed_offsets(consumer, partitions)
        for tp in partitions:
            low, high = watermarks(consumer, tp)
            checkpoint = self._resume(tp.partition, high)
            first = unjudged_from(checkpoint, self._committed.get(tp.partition))
            if first is not None and first < low:  # deleted before they were judged
                self.offset_loss.gap(tp.topic, tp.partition, first, low)
                lost.append(TopicPartition(tp.topic, tp.partition, low))
            if checkpoint is None:
                self.checkpoints.forget(tp.partition)
                start = OFFSET_BEGINNING  # reads from the log start, whatever it is then
                reads_from = low
            else:
                start = reads_from = max(checkpoint, low)  # (below low: counted above)
                log.info("join: partition %d resumes at offset %d", tp.partition, start)
            if high > reads_from:
                self._rebuilding.add(tp.partition)
                backlog += high - reads_from
            starts.append(TopicPartition(tp.topic, tp.partition, start))
        self._commit_counted(consumer, lost)
        consumer.assign(starts)
        log.info(
            "join: stage 2 owns partitions %s; re-reading up to %d records",
            sorted(self._owned),
            backlog,
        )

    @staticmethod
    def _committed_offsets(consumer: Any, partitions: list[TopicPartition]) -> dict[int, int]:
        try:
            committed = consumer.committed(partitions, timeout=10)
        except KafkaException as exc:
            log.warning(
                "join: cannot read stage 2's committed offsets (so every bad record re-read "
                "is dead-lettered, and without a checkpoint no loss below the log start is "
                "counted): %s",
                exc,
            )
            return {}
        return {tp.partition: tp.offset for tp in committed if tp.offset >= 0}

    def _commit_counted(self, consumer: Any, lost: list[TopicPartition]) -> None:
        """Commit the log start of the partitions whose lost events were just counted, so
        a restart before their next checkpoint does not count them again."""
        if not lost:
            return
        try:
            consumer.commit(offsets=lost, asynchronous=False)
        except KafkaException as exc:
            log.warning(
                "join: cannot commit stage 2's offsets past its lost events (a restart "
                "before the next checkpoint counts them again): %s",
                exc,
            )
            return
        self._committed.update((tp.partition, tp.offset) for tp in lost)

    def _resume(self, partition: int, high: int) -> int | None:
        """The offset of ``partition``'s checkpoint, its state restored; None when it has
        no usable checkpoint (then it is re-read from the beginning)."""
        if self._topic_id is None:
            return None
        experiments = self._by_partition.get(partition, [])
        checkpoint = self.checkpoints.load(partition, experiments, self._topic_id)
        if checkpoint is None:
            return None
        if checkpoint.offset > high:  # truncated (unclean leader election)
            log.warning("join: ignoring the partition-%d checkpoint: past the end", partition)
            return None
        for name, state in checkpoint.states.items():
            self.judge.restore(name, state)
        return checkpoint.offset

    def _read_topic_id(self) -> str | None:
        topic = self.topics.join_events
        try:
            described = self._admin.describe_topics(TopicCollection([topic]), request_timeout=10)
            return str(described[topic].result(timeout=10).topic_id)
        except (KafkaException, TimeoutError) as exc:
            log.warning("join: cannot read the id of %s, so no checkpoints: %s", topic, exc)
            return None

    def publish_reports(self) -> None:
        """Snapshots, alert transitions and verdict changes of the experiments owned."""
        if self._rebuilding:
            return  # counts and rules only mean something once the fold is complete
        now = now_ms()
        owned = (name for p in sorted(self._owned) for name in self._by_partition.get(p, ()))
        for name in owned:
            report = self.judge.report(name, now)
            self.recent.add(report)
            key = name.encode()
            self.reports.produce(self.topics.metrics, self.codec.encode(report.snapshot), key)
            for alert in report.alerts:
                self.reports.produce(
                    self.topics.alerts, self.codec.encode(alert), alert.dedup_key.encode()
                )
            if report.verdict is not None:
                self.reports.produce(self.topics.alerts, self.codec.encode(report.verdict), key)
            decision = report.snapshot.decision
            self.metrics.decision.labels(name).set(
                {"reject": -1, "continue": 0, "promote": 1}.get(decision, 0)
            )
            self.latest[name] = {
                "decision": decision,
                "reason": report.snapshot.reason,
                "counts": dict(report.snapshot.counts),
                "timestamp_ms": now,
            }
        self.reports.poll(0)
