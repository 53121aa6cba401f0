"""``shadow-eval status``: consumer lag of our groups, join hit rates and current verdicts.

Lag comes from the AdminClient: our consumer groups (``shadow-worker.*`` and the join's
``<app_id>-<topic prefix>`` and ``<app_id>-<topic prefix>-judge``, whatever the app id:
any group with that ending that reads our topics), their committed
offsets and the topics' high watermarks (stage 2 commits at its checkpoints, so its lag
is at most ``checkpoint_every_s`` old). Hit rates and verdicts come from the latest
:class:`MetricsSnapshot` of each experiment on the metrics topic; each worker process's
rate, CPU share and memory from the last candidate predictions
(:mod:`streams.status_workers`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from confluent_kafka import KafkaException, TopicPartition

from streams.codec import CodecError, codec_for
from streams.kafka.clients import CONFLUENT, AdminLike
from streams.kafka.config import admin_config, base_config, reader_config
from streams.kafka.problems import explain
from streams.kafka.problems import metadata as list_metadata
from streams.records import MetricsSnapshot, Record
from streams.settings import Settings
from streams.status_workers import WorkerCostRow, worker_rows

__all__ = [
    "GroupLag",
    "JoinHealth",
    "Status",
    "StatusError",
    "collect_status",
    "group_lags",
    "group_states",
    "join_health",
    "latest_snapshots",
    "our_groups",
    "tail_records",
]

WORKER_GROUP_PREFIX = "shadow-worker."
WORKER_TAIL = 500
"""Candidate predictions read per partition for the workers' rate, CPU and memory."""
JOIN_APP_ID = "shadow-eval-join"


class StatusError(RuntimeError):
    """The broker cannot be asked (unreachable, or a request failed)."""


@dataclass(frozen=True, slots=True)
class GroupLag:
    """One consumer group: its state, members and lag per topic.

    Examples
    --------
    >>> GroupLag("shadow-worker.churn.v2", "STABLE", 2, {"shadow.inputs": 3}).total
    3
    """

    group: str
    state: str
    members: int
    lag: dict[str, int] = field(default_factory=dict)
    """Topic -> sum over partitions of (high watermark - committed offset)."""
    assigned: tuple[str, ...] = ()
    """Our topics its members are assigned now (empty for a group without members)."""

    @property
    def total(self) -> int:
        return sum(self.lag.values())


@dataclass(frozen=True, slots=True)
class JoinHealth:
    """An experiment's join hit rates and current verdict, from its latest snapshot.

    Examples
    --------
    >>> s = MetricsSnapshot("e", "m", "v1", "v2", 0, {"paired": 90, "labelled": 45,
    ...     "expired_no_shadow": 10}, (), "continue", "not yet")
    >>> h = JoinHealth.of(s)
    >>> h.pair_rate, h.label_rate
    (0.9, 0.5)
    """

    experiment: str
    timestamp_ms: int
    paired: int
    labelled: int
    pair_rate: float | None
    """paired / (paired + expired_no_shadow + expired_no_live)."""
    label_rate: float | None
    """labelled / paired."""
    decision: str
    reason: str

    @classmethod
    def of(cls, snapshot: MetricsSnapshot) -> JoinHealth:
        counts = snapshot.counts
        paired, labelled = int(counts.get("paired", 0)), int(counts.get("labelled", 0))
        attempts = (
            paired + int(counts.get("expired_no_shadow", 0)) + int(counts.get("expired_no_live", 0))
        )
        return cls(
            snapshot.experiment,
            snapshot.timestamp_ms,
            paired,
            labelled,
            paired / attempts if attempts else None,
            labelled / paired if paired else None,
            snapshot.decision,
            snapshot.reason,
        )


@dataclass(frozen=True, slots=True)
class Status:
    """Everything ``shadow-eval status`` shows."""

    bootstrap: str
    groups: tuple[GroupLag, ...]
    experiments: tuple[JoinHealth, ...]
    workers: tuple[WorkerCostRow, ...] = ()
    """Each shadow worker process's rate, CPU share and memory (recent predictions)."""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for group, lag in zip(out["groups"], self.groups, strict=True):
            group["total"] = lag.total
        return out


def _admin(settings: Settings) -> AdminLike:
    # Quiet librdkafka: connection failures become one StatusError, and no "Purging
    # unserved events" notice is printed when a client goes away.
    return CONFLUENT.admin(admin_config(settings, quiet=True))


def _reachable(admin: AdminLike, settings: Settings, timeout: float) -> None:
    try:
        metadata = list_metadata(admin, settings.kafka_bootstrap, timeout)
    except KafkaException as exc:
        why = explain(settings.kafka_bootstrap, exc, admin)
        raise StatusError(
            f"Kafka at {settings.kafka_bootstrap} did not answer within {timeout:g}s "
            f"(SHADOW_KAFKA_BOOTSTRAP / --bootstrap): {why}"
        ) from None
    if not metadata.brokers:
        raise StatusError(f"Kafka at {settings.kafka_bootstrap} answered with no brokers")


def our_groups(admin: AdminLike, settings: Settings, timeout: float = 10.0) -> list[str]:
    """Group ids of shadow workers, and of every group that may be a join of
    ``settings.topic_prefix`` (both stages): it ends with ``-<prefix>`` or
    ``-<prefix>-judge``, whatever its app id. :func:`collect_status` keeps those that read
    our topics."""
    try:
        listing = admin.list_consumer_groups(request_timeout=timeout).result(timeout=timeout)
    except (KafkaException, TimeoutError) as exc:
        raise StatusError(
            f"cannot list consumer groups at {settings.kafka_bootstrap}: {exc}"
        ) from None
    suffixes = (f"-{settings.topic_prefix}", f"-{settings.topic_prefix}-judge")
    return sorted(
        g.group_id
        for g in listing.valid
        if g.group_id.startswith(WORKER_GROUP_PREFIX) or g.group_id.endswith(suffixes)
    )


def _committed(
    settings: Settings, group: str, partitions: list[TopicPartition], timeout: float
) -> list[TopicPartition]:
    """Committed offsets of ``group`` with a plain consumer (it fetches, it never joins).

    Not ``AdminClient.list_consumer_group_offsets``: confluent-kafka segfaults in it when a
    group is unknown or its coordinator is moving (confluent-kafka-python#1982).
    """
    consumer = CONFLUENT.consumer(
        base_config(settings, overrides={"group.id": group, "enable.auto.commit": False})
    )
    try:
        committed = consumer.committed(partitions, timeout=timeout)
        return [tp for tp in committed if tp.offset >= 0]
    finally:
        consumer.close()


def _high_watermarks(
    settings: Settings, partitions: list[TopicPartition], timeout: float
) -> dict[tuple[str, int], int]:
    consumer = CONFLUENT.consumer(reader_config(settings, "status"))
    try:
        return {
            (tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=timeout)[1]
            for tp in partitions
        }
    finally:
        consumer.close()


def _our_partitions(admin: AdminLike, settings: Settings, timeout: float) -> list[TopicPartition]:
    metadata = admin.list_topics(timeout=timeout)
    return [
        TopicPartition(name, partition)
        for name in settings.topics.all
        if name in metadata.topics
        for partition in metadata.topics[name].partitions
    ]


def group_states(
    settings: Settings, groups: Sequence[str], timeout: float = 10.0
) -> dict[str, tuple[str, int]]:
    """``group -> (state, members)``, e.g. ``("STABLE", 2)``; unknown groups are ``DEAD``."""
    admin = _admin(settings)
    try:
        described = admin.describe_consumer_groups(list(groups), request_timeout=timeout)
        out = {}
        for group in groups:
            description = described[group].result(timeout=timeout)
            state = getattr(description.state, "name", str(description.state))
            out[group] = (state, len(description.members))
    except (KafkaException, TimeoutError) as exc:
        raise StatusError(f"cannot describe groups at {settings.kafka_bootstrap}: {exc}") from None
    return out


def group_lags(settings: Settings, groups: Sequence[str], timeout: float = 10.0) -> list[GroupLag]:
    """State, members and lag of each group, on the topics of ``settings.topics``."""
    if not groups:
        return []
    admin = _admin(settings)
    try:
        described = admin.describe_consumer_groups(list(groups), request_timeout=timeout)
        descriptions = {g: described[g].result(timeout=timeout) for g in groups}
        partitions = _our_partitions(admin, settings, timeout)
        committed = {g: _committed(settings, g, partitions, timeout) for g in groups}
        consumed = {(tp.topic, tp.partition) for tps in committed.values() for tp in tps}
        highs = _high_watermarks(
            settings, [TopicPartition(t, p) for t, p in sorted(consumed)], timeout
        )
    except (KafkaException, TimeoutError) as exc:
        raise StatusError(
            f"cannot read consumer groups at {settings.kafka_bootstrap}: {exc}"
        ) from None
    lags = []
    for group in groups:
        per_topic: dict[str, int] = {}
        for tp in committed[group]:
            behind = highs.get((tp.topic, tp.partition), 0) - tp.offset
            per_topic[tp.topic] = per_topic.get(tp.topic, 0) + max(behind, 0)
        description = descriptions[group]
        state = getattr(description.state, "name", str(description.state))
        assigned = {
            tp.topic
            for member in description.members
            if member.assignment is not None
            for tp in member.assignment.topic_partitions
        }
        ours = tuple(sorted(assigned & set(settings.topics.all)))
        lags.append(GroupLag(group, state, len(description.members), per_topic, ours))
    return lags


def tail_records(
    settings: Settings, topic: str, per_partition: int = 200, timeout: float = 10.0
) -> list[Record]:
    """The records among the last ``per_partition`` messages of each partition of
    ``topic`` (undecodable ones skipped), in the order read."""
    consumer = CONFLUENT.consumer(reader_config(settings, "status"))
    codec = codec_for(settings, register=False)
    found: list[Record] = []
    try:
        metadata = consumer.list_topics(topic, timeout=timeout)
        if topic not in metadata.topics or metadata.topics[topic].error is not None:
            raise StatusError(f"no topic {topic!r} (run `shadow-eval topics create`)")
        ends: dict[int, int] = {}
        assignment = []
        for partition in metadata.topics[topic].partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout
            )
            if high > low:
                ends[partition] = high
                assignment.append(TopicPartition(topic, partition, max(low, high - per_partition)))
        consumer.assign(assignment)
        while ends:
            messages = consumer.consume(500, timeout=timeout)
            if not messages:
                break
            for message in messages:
                if message.error() is not None:
                    continue
                partition, offset = message.partition(), message.offset()
                if (
                    partition is not None
                    and offset is not None
                    and offset >= ends.get(partition, 0) - 1
                ):
                    ends.pop(partition, None)
                try:
                    found.append(codec.decode(message.value()))
                except CodecError:
                    continue
    except (KafkaException, TimeoutError) as exc:
        raise StatusError(f"cannot read {topic}: {exc}") from None
    finally:
        consumer.close()
    return found


def latest_snapshots(
    settings: Settings, per_partition: int = 200, timeout: float = 10.0
) -> dict[str, MetricsSnapshot]:
    """The newest snapshot of each experiment among the last records of the metrics topic."""
    latest: dict[str, MetricsSnapshot] = {}
    for record in tail_records(settings, settings.topics.metrics, per_partition, timeout):
        if isinstance(record, MetricsSnapshot):
            known = latest.get(record.experiment)
            if known is None or record.timestamp_ms >= known.timestamp_ms:
                latest[record.experiment] = record
    return latest


def join_health(settings: Settings, timeout: float = 10.0) -> list[JoinHealth]:
    """Hit rates and verdict of every experiment with a snapshot, by name."""
    snapshots = latest_snapshots(settings, timeout=timeout)
    return [JoinHealth.of(snapshots[name]) for name in sorted(snapshots)]


def collect_status(
    settings: Settings, extra_groups: Sequence[str] = (), timeout: float = 10.0
) -> Status:
    """Lag of our groups (plus ``extra_groups``) and the join health of every experiment."""
    admin = _admin(settings)
    _reachable(admin, settings, timeout)
    groups = sorted({*our_groups(admin, settings, timeout), *extra_groups})
    lags = [
        lag
        for lag in group_lags(settings, groups, timeout)
        # A group of another application that merely ends like ours reads none of our topics.
        if lag.lag
        or lag.assigned
        or lag.group in extra_groups
        or lag.group.startswith(WORKER_GROUP_PREFIX)
    ]
    recent = tail_records(settings, settings.topics.shadow_predictions, WORKER_TAIL, timeout)
    return Status(
        settings.kafka_bootstrap,
        tuple(lags),
        tuple(join_health(settings, timeout)),
        tuple(worker_rows(recent)),
    )
