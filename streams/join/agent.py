"""The join agent on faust-streaming: thin drivers around :class:`Pairing` and :class:`Judge`.

Topology (every per-request topic keyed by request id and co-partitioned)::

    predictions.live ─┐
    predictions.shadow├─ stage 1 (table "pending", key request_id) ─► <prefix>.join.events
    ground_truth ─────┘                                                  (key experiment)
    <prefix>.join.events ─ stage 2 (monitors per experiment) ─► metrics, alerts

Reliability: at-least-once with deduplication. Each stage-1 batch is made durable (its
join events, then its state changelog) before faust may commit its offsets. A crash may
redeliver records; stage 1 sees them as duplicates in its recovered table. A stage-1
event emitted twice has the same ``dedup_key`` and stage 2 keeps the first.

Stage 2's state is a fold over the join-events topic, which is its changelog: after every
rebalance it is rebuilt by re-reading the owned partitions of that topic from the start
(records faust then redelivers are duplicates). So stage 2 writes no changelog of its own
and keeps no copy of the events in memory; counts stay exact across restarts.

Expiry runs in a timer, outside any stream event; the pending table therefore uses the
producer's partitioner (murmur2 of the request id, as every shadow-eval producer) and
only the partitions this worker owns are scanned.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import faust
from aiokafka.partitioner import murmur2
from faust.types import TP

from streams.codec import Codec, CodecError
from streams.join.broker_view import BrokerView
from streams.join.experiments import ExperimentsFile
from streams.join.judge import Judge
from streams.join.metrics import JoinMetrics
from streams.join.offsets import OffsetTracker
from streams.join.pairing import Pairing, Step
from streams.records import (
    DeadLetter,
    GroundTruth,
    JoinEvent,
    ModelInput,
    PendingRequest,
    Prediction,
)
from streams.settings import Settings

__all__ = ["JoinAgent", "partition_of"]

log = logging.getLogger(__name__)

BATCH_SIZE = 2000
"""Records handled per batch; one broker round trip makes a batch durable."""
BATCH_WITHIN_S = 0.05
SESSION_TIMEOUT_S = 10.0


def partition_of(key: bytes, partitions: int) -> int:
    """The partition every shadow-eval producer (murmur2) sends ``key`` to."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def _now_ms() -> int:
    return int(time.time() * 1000)


class JoinAgent:
    """One faust app running both join stages for an experiments file.

    Parameters
    ----------
    settings
        Broker, topic prefix and partition count (must match the topics).
    experiments
        The parsed experiments file.
    data_dir
        Where faust keeps local state (RocksDB) and its own files.
    web_port
        Port of faust's web server with ``/verdicts/``; None disables it.

    Examples
    --------
    >>> agent = JoinAgent(settings, experiments)  # doctest: +SKIP
    >>> agent.run()  # doctest: +SKIP
    """

    def __init__(
        self,
        settings: Settings,
        experiments: ExperimentsFile,
        *,
        data_dir: Path | None = None,
        web_port: int | None = None,
        metrics: JoinMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.experiments = experiments
        self.codec = Codec()
        self.pairing = Pairing(experiments)
        self.judge = Judge(experiments)
        self.metrics = metrics or JoinMetrics()
        self.partitions = settings.partitions
        self.latest: dict[str, dict[str, Any]] = {}
        # faust's acks are off for our topics; this decides what is committed (offsets.py).
        self._offsets: OffsetTracker[TP] = OffsetTracker()
        self._rewound: dict[TP, int] = {}
        # Stage-1 batches and expiry scans both write the pending table; their changelog
        # writes must reach the broker in the order the local store saw them.
        self._state_lock = asyncio.Lock()
        self._broker = BrokerView(settings, f"{experiments.join.app_id}-{settings.topic_prefix}")
        join = experiments.join
        self.app = faust.App(
            f"{join.app_id}-{settings.topic_prefix}",
            broker=[f"kafka://{server}" for server in settings.kafka_bootstrap.split(",")],
            broker_credentials=_credentials(settings),
            store=join.store,
            datadir=str(data_dir or settings.cache_dir / "join"),
            topic_partitions=settings.partitions,
            topic_replication_factor=settings.replication_factor,
            table_standby_replicas=0,
            consumer_auto_offset_reset="earliest",
            producer_acks=-1,
            # A killed worker's partitions move to the others after this long (faust's
            # default of 60 s stalls the whole group for a minute).
            broker_session_timeout=SESSION_TIMEOUT_S,
            broker_heartbeat_interval=SESSION_TIMEOUT_S / 4,
            # Also the rebalance timeout: a worker killed while the group was rebalancing
            # is dropped only after it (faust's default, 1000 s, stalls the survivors).
            broker_max_poll_interval=SESSION_TIMEOUT_S * 3,
            key_serializer="raw",
            value_serializer="raw",
            web_enabled=web_port is not None,
            web_port=web_port or 6066,
            web_host="127.0.0.1",
            web_bind="127.0.0.1",
        )
        topics = settings.topics
        source_topics = [topics.live_predictions, topics.shadow_predictions, topics.ground_truth]
        if experiments.needs_inputs:  # downstream decision / KPI functions read the inputs
            source_topics.append(topics.inputs)
        self.sources = self.app.topic(*source_topics, key_type=bytes, value_type=bytes, acks=False)
        self.join_topic = self.app.topic(
            topics.join_events,
            partitions=settings.partitions,
            key_type=bytes,
            value_type=bytes,
            acks=False,
        )
        self.metrics_topic = self.app.topic(topics.metrics, key_type=bytes, value_type=bytes)
        self.alerts_topic = self.app.topic(topics.alerts, key_type=bytes, value_type=bytes)
        self.dlq_topic = self.app.topic(topics.dlq, key_type=bytes, value_type=bytes)
        self.pending = self.app.Table(
            "pending",
            default=None,
            key_type=bytes,
            value_type=bytes,
            partitions=settings.partitions,
            use_partitioner=True,
        )
        self.pending.on_recover(self._rebuild_judge)
        self.app.agent(self.sources, name="stage1")(self._stage1)
        self.app.agent(self.join_topic, name="stage2")(self._stage2)
        self.app.timer(join.expire_every_s)(self._expire)
        self.app.timer(join.snapshot_every_s)(self._publish_reports)
        self.app.page("/verdicts/")(self._verdicts_page)

    def run(self, loglevel: str = "WARNING") -> None:
        """Run until SIGTERM / SIGINT (faust's worker handles the signals)."""
        worker = faust.Worker(self.app, loglevel=loglevel, quiet=True)
        try:
            worker.execute_from_commandline()
        finally:
            self._broker.close()

    # ------------------------------------------------------------------ stage 1
    async def _stage1(self, stream: Any) -> None:
        # Batches are acked only when this loop asks for the next one, after their join
        # events and then their state are on the broker (see _settle).
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WITHIN_S):
            async with self._state_lock:
                await self._stage1_batch(events)

    async def _stage1_batch(self, events: list[Any]) -> None:
        outgoing: list[JoinEvent] = []
        writes: dict[bytes, bytes | None] = {}
        topics: Counter[str] = Counter()
        outcomes: Counter[str] = Counter()
        events = await self._current(events)
        for event in events:
            message = event.message
            topics[message.topic] += 1
            record = await self._decode_request_record(message)
            if record is None:
                continue
            key = record.request_id.encode()
            raw = self.pending.data.get(key)
            state = None if raw is None else self.codec.decode_as(PendingRequest, raw)
            now = _now_ms()
            if isinstance(record, GroundTruth):
                step = self.pairing.on_label(state, record, now)
            elif isinstance(record, ModelInput):
                step = self.pairing.on_input(state, record, now)
            else:
                step = self.pairing.on_prediction(state, record, now)
            outcomes[step.outcome.value] += 1
            self._stage(key, raw is not None, step, outgoing, writes)
        # Counted per batch: a labelled Prometheus child costs microseconds per call.
        self.metrics.count(self.metrics.events_in, topics)
        self.metrics.count(self.metrics.outcomes, outcomes)
        await self._settle(outgoing, writes)
        await self._commit(events)

    async def _decode_request_record(
        self, message: Any
    ) -> Prediction | GroundTruth | ModelInput | None:
        try:
            record = self.codec.decode(
                message.value,
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
            )
        except CodecError as exc:
            await self._dead_letter(message, "undecodable", exc.reason)
            return None
        if not isinstance(record, Prediction | GroundTruth | ModelInput):
            reason = (
                f"expected a Prediction, GroundTruth or ModelInput, got {type(record).__name__}"
            )
            await self._dead_letter(message, "wrong_schema", reason)
            return None
        return record

    def _stage(
        self,
        key: bytes,
        existed: bool,
        step: Step,
        outgoing: list[JoinEvent],
        writes: dict[bytes, bytes | None],
    ) -> None:
        """Apply ``step`` to the local store now; its changelog write and events go later."""
        store = self.pending.data
        if step.state is None:
            if existed or key in writes:
                store.pop(key, None)
                writes[key] = None
        elif step.changed:
            value = self.codec.encode(step.state)
            store[key] = value
            writes[key] = value
        outgoing.extend(step.events)

    async def _settle(self, outgoing: list[JoinEvent], writes: dict[bytes, bytes | None]) -> None:
        """Make a batch durable: its join events first, then the state that records them.

        A crash in between leaves the old state, so the records are redelivered and the
        events emitted again; stage 2 drops them as duplicates. The other order could
        lose events. faust's own commit does not wait for changelog writes, hence this.
        """
        pending_sends = []
        self.metrics.count(
            self.metrics.join_events,
            Counter((event.kind.value, event.reason or "") for event in outgoing),
        )
        for join_event in outgoing:
            pending_sends.append(
                await self.join_topic.send(
                    key=join_event.experiment.encode(), value=self.codec.encode(join_event)
                )
            )
        await asyncio.gather(*pending_sends)
        await asyncio.gather(
            *(
                self.pending.send_changelog(partition_of(key, self.partitions), key, value)
                for key, value in writes.items()
            )
        )

    async def _expire(self) -> None:
        if self.app.rebalancing or not await self._caught_up():
            # Behind on the topics (a backlog, a restart): the other half of a pending
            # request may still be unread, so nothing can be declared missing yet.
            return
        async with self._state_lock:
            await self._expire_owned()

    async def _expire_owned(self) -> None:
        owned = self._owned(self.settings.topics.live_predictions)
        now = _now_ms()
        store = self.pending.data
        outgoing: list[JoinEvent] = []
        writes: dict[bytes, bytes | None] = {}
        count = 0
        for key in list(store.keys()):
            if partition_of(key, self.partitions) not in owned:
                continue  # another worker's request, left over from before a rebalance
            raw = store.get(key)
            if raw is None:
                continue
            count += 1
            state = self.codec.decode_as(PendingRequest, raw)
            self._stage(key, True, self.pairing.expire(key.decode(), state, now), outgoing, writes)
        await self._settle(outgoing, writes)
        self.metrics.pending.set(count)

    # ------------------------------------------------------------------ stage 2
    async def _stage2(self, stream: Any) -> None:
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WITHIN_S):
            current = await self._current(events)
            for event in current:
                message = event.message
                try:
                    join_event = self.codec.decode_as(
                        JoinEvent,
                        message.value,
                        topic=message.topic,
                        partition=message.partition,
                        offset=message.offset,
                    )
                except CodecError as exc:
                    await self._dead_letter(message, "undecodable", exc.reason)
                    continue
                if not self.judge.apply(join_event):
                    self.metrics.judged_duplicates.inc()
            await self._commit(current)

    async def _rebuild_judge(self) -> None:
        """After a rebalance: the monitors of the experiments this worker now owns.

        Also restarts offset tracking: reading resumes at the group's commits.
        """
        topic = self.join_topic.get_topic_name()
        owned = self._owned(topic)
        loop = asyncio.get_running_loop()
        ours = (*self.settings.topics.per_request, topic)
        tps = [tp for tp in self.app.assignor.assigned_actives() if tp.topic in ours]
        starts = await loop.run_in_executor(None, self._broker.ends, tps)
        self._offsets.reset({tp: start for tp, (start, _) in starts.items()})
        self._rewound.clear()
        values = await loop.run_in_executor(None, self._broker.read_log, topic, owned)
        self.judge = Judge(self.experiments)
        for value in values:
            try:
                self.judge.apply(self.codec.decode_as(JoinEvent, value))
            except CodecError:
                continue  # was dead-lettered when it first arrived
        log.info("join: rebuilt stage 2 from %d events of partitions %s", len(values), owned)

    async def _publish_reports(self) -> None:
        if self.app.rebalancing:
            return
        owned = self._owned(self.join_topic.get_topic_name())
        now = _now_ms()
        for name in self.judge.experiments:
            if partition_of(name.encode(), self.partitions) not in owned:
                continue
            report = self.judge.report(name, now)
            await self.metrics_topic.send(
                key=name.encode(), value=self.codec.encode(report.snapshot)
            )
            for alert in report.alerts:
                await self.alerts_topic.send(
                    key=alert.dedup_key.encode(), value=self.codec.encode(alert)
                )
            if report.verdict is not None:
                await self.alerts_topic.send(
                    key=name.encode(), value=self.codec.encode(report.verdict)
                )
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

    # ------------------------------------------------------------------ helpers
    async def _commit(self, events: list[Any]) -> None:
        """Commit the contiguous frontier of a durable batch; re-read from any hole."""
        for event in events:
            self._offsets.done(event.message.tp, event.message.offset)
        offsets = self._offsets.to_commit()
        if offsets:
            # faust's own commit step (flushes its producer, respects the assignment).
            await self.app.consumer._commit_offsets(offsets)  # type: ignore[attr-defined]
        for tp, offset in self._offsets.holes().items():
            if self._rewound.get(tp) != offset:
                self._rewound[tp] = offset
                log.info("join: re-reading %s from %d (skipped during a rebalance)", tp, offset)
                await self.app.consumer.seek(tp, offset)

    async def _current(self, events: list[Any]) -> list[Any]:
        """The events of this consumer generation on partitions this worker owns.

        Events buffered before a rebalance are not processed here; a partition this
        worker still owns is rewound to the first of them so that they come again (faust
        does not always seek back). Partitions now owned by another worker are read there
        from their last commit; nothing skipped is ever committed (see :meth:`_commit`).
        """
        generation = self.app.consumer_generation_id
        owned = self.app.assignor.assigned_actives()
        current = []
        rewind: dict[TP, int] = {}
        for event in events:
            message = event.message
            if message.generation_id == generation and message.tp in owned:
                current.append(event)
                continue
            if message.tp in owned:
                rewind[message.tp] = min(message.offset, rewind.get(message.tp, message.offset))
        for tp, offset in rewind.items():
            log.info("join: re-reading %s from %d after a rebalance", tp, offset)
            await self.app.consumer.seek(tp, offset)
        return current

    def _owned(self, topic: str) -> set[int]:
        return {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == topic}

    async def _caught_up(self) -> bool:
        """Whether every owned partition of the per-request topics is read to its end.

        A partition counts as read up to the furthest of this worker's contiguous
        frontier and the group's commit (after a restart nothing may arrive on a
        partition that was already complete). Also refreshes the lag gauges.
        """
        owned = [
            tp
            for tp in self.app.assignor.assigned_actives()
            if tp.topic in self.settings.topics.per_request
        ]
        if not owned:
            return True
        loop = asyncio.get_running_loop()
        ends = await loop.run_in_executor(None, self._broker.ends, owned)
        lags: dict[str, int] = {}
        for tp in owned:
            committed, high = ends[tp]
            position = max(self._offsets.frontier.get(tp, 0), committed)
            lags[tp.topic] = lags.get(tp.topic, 0) + max(high - position, 0)
        for topic, lag in lags.items():
            self.metrics.lag.labels(topic).set(lag)
        return not any(lags.values())

    async def _dead_letter(self, message: Any, error_type: str, reason: str) -> None:
        self.metrics.dead_lettered.labels(error_type).inc()
        log.warning(
            "join: dead-lettered %s[%d]@%d: %s",
            message.topic,
            message.partition,
            message.offset,
            reason,
        )
        letter = DeadLetter(
            "join",
            message.topic,
            message.partition,
            message.offset,
            error_type,
            reason,
            _now_ms(),
            message.key,
            message.value,
        )
        await self.dlq_topic.send(key=message.key, value=self.codec.encode(letter))

    async def _verdicts_page(self, web: Any, request: Any) -> Any:
        return web.json(self.latest)


def _credentials(settings: Settings) -> Any:
    if settings.security_protocol == "PLAINTEXT":
        return None
    if settings.sasl_mechanism and settings.sasl_username and settings.sasl_password:
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password.get_secret_value(),
            mechanism=settings.sasl_mechanism,
        )
    import ssl

    context = ssl.create_default_context(
        cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None
    )
    if settings.ssl_certfile:
        context.load_cert_chain(
            str(settings.ssl_certfile), str(settings.ssl_keyfile) if settings.ssl_keyfile else None
        )
    return faust.SSLCredentials(context)
