"""Join stages 1 and 2 on an in-process fake of the Kafka layer: transactions, rewinds,
restores, expiry and dead letters (the real broker: tests/integration/test_join*.py)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError

from streams.codec import Codec
from streams.join.experiments import ExperimentsFile
from streams.join.metrics import JoinMetrics
from streams.join.stage_judge import JudgeStage, events_of
from streams.join.stage_pairs import PairStage
from streams.records import (
    DeadLetter,
    Decision,
    GroundTruth,
    JoinKind,
    Prediction,
    Role,
    Verdict,
)
from streams.settings import Settings
from tests.unit.join.experiments_toml import CANDIDATES_TOML
from tests.unit.kafka.fakes import FakeBroker, FakeClients, FakeError

SETTINGS = Settings(topic_prefix="t", partitions=3)
TOPICS = SETTINGS.topics
GROUP = "app-t"
VERDICT = Verdict("churn-v2", Decision.CONTINUE, "not yet", 0)


class NoWatchdog:
    @contextlib.contextmanager
    def guard(self, what: str) -> Iterator[None]:
        yield

    def close(self) -> None:
        pass


def _experiments(pair_ttl: float = 3600, label_ttl: float = 7200) -> ExperimentsFile:
    return ExperimentsFile.parse(CANDIDATES_TOML.format(pair_ttl=pair_ttl, label_ttl=label_ttl))


def _stage(
    broker: FakeBroker, tmp_path: Path, experiments: ExperimentsFile | None = None
) -> PairStage:
    stage = PairStage(
        SETTINGS,
        experiments or _experiments(),
        GROUP,
        JoinMetrics(),
        tmp_path,
        watchdog=NoWatchdog(),  # type: ignore[arg-type]
        clients=FakeClients(broker),
    )
    stage.start()
    return stage


def _broker() -> FakeBroker:
    broker = FakeBroker(partitions=3)
    broker.create(*TOPICS.all)
    return broker


def _publish(broker: FakeBroker, request_id: str, *, live: bool, shadow: bool, label: bool) -> None:
    codec, key = Codec(), request_id.encode()
    if live:
        record = Prediction(request_id, "churn", "v1", Role.LIVE, 1_000, "yes", latency_ms=5.0)
        broker.append(TOPICS.live_predictions, key, codec.encode(record))
    if shadow:
        record = Prediction(request_id, "churn", "v2", Role.SHADOW, 1_000, "no", latency_ms=7.0)
        broker.append(TOPICS.shadow_predictions, key, codec.encode(record))
    if label:
        truth = GroundTruth(request_id, "churn", 2_000, "yes")
        broker.append(TOPICS.ground_truth, key, codec.encode(truth))


def _events(broker: FakeBroker) -> list[tuple[JoinKind, str, str]]:
    codec = Codec()
    return sorted(
        (event.kind, event.experiment, event.request_id)
        for _, value in broker.records(TOPICS.join_events)
        for event in events_of(codec.decode(value))
    )


def _drain(stage: PairStage) -> None:
    while stage.poll(0):
        pass


def test_live_and_candidate_meet_in_one_committed_transaction(tmp_path: Path) -> None:
    broker = _broker()
    for i in range(20):
        _publish(broker, f"r{i}", live=True, shadow=True, label=i < 5)
    stage = _stage(broker, tmp_path)
    _drain(stage)
    events = _events(broker)
    paired = [e for e in events if e[0] is JoinKind.PAIRED and e[1] == "worse"]
    labelled = [e for e in events if e[0] is JoinKind.LABELLED and e[1] == "worse"]
    assert len(paired) == 20 and len(labelled) == 5
    # The inputs' offsets went into the same transactions, as the group's.
    committed = broker.committed[GROUP]
    assert sum(committed.values()) == 45
    # Every request is still held (the other experiments' candidates never came), in the
    # store and in its changelog.
    assert stage.pending == 20
    assert len({k for k, _ in broker.records(TOPICS.join_state)}) == 20
    stage.close()


def test_an_aborted_transaction_is_redone_from_the_changelog_not_lost(tmp_path: Path) -> None:
    broker = _broker()
    for i in range(10):
        _publish(broker, f"r{i}", live=True, shadow=False, label=False)
    stage = _stage(broker, tmp_path)
    _drain(stage)
    assert stage.pending == 10 and _events(broker) == []
    for i in range(10):
        _publish(broker, f"r{i}", live=False, shadow=True, label=False)
    broker.commit_errors.append(FakeError(KafkaError._FENCED, "fenced", abort=True))
    stage.poll(0)  # aborted: nothing out, state and offsets rewound
    assert _events(broker) == []
    assert stage.pending == 10
    _drain(stage)  # redone
    paired = [e for e in _events(broker) if e[0] is JoinKind.PAIRED and e[1] == "worse"]
    assert len(paired) == 10
    stage.close()


def test_a_new_owner_restores_the_state_and_duplicates_count_once(tmp_path: Path) -> None:
    broker = _broker()
    for i in range(8):
        _publish(broker, f"r{i}", live=True, shadow=False, label=False)
    first = _stage(broker, tmp_path / "a")
    _drain(first)
    first.close()
    for i in range(8):
        _publish(broker, f"r{i}", live=True, shadow=True, label=False)  # live again: a duplicate
    second = _stage(broker, tmp_path / "b")
    _drain(second)
    paired = [e for e in _events(broker) if e[0] is JoinKind.PAIRED and e[1] == "worse"]
    assert sorted(e[2] for e in paired) == sorted(f"r{i}" for i in range(8))
    second.close()


def test_a_changelog_value_of_another_schema_is_never_restored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broker = _broker()
    for i in range(8):
        _publish(broker, f"r{i}", live=True, shadow=False, label=False)
    first = _stage(broker, tmp_path / "a")
    _drain(first)
    first.close()
    foreign = Codec().encode(VERDICT)  # valid Avro, framed with another schema id
    for p, log in enumerate(broker.topics[TOPICS.join_state]):
        for key, _ in list(log):
            if key is not None and key.endswith((b"r0", b"r1")):
                broker.append(TOPICS.join_state, key, foreign, p)
    for i in range(8):
        _publish(broker, f"r{i}", live=False, shadow=True, label=False)
    second = _stage(broker, tmp_path / "b")
    with caplog.at_level("WARNING", "streams.join.pairs_restore"):
        _drain(second)
    paired = [e for e in _events(broker) if e[0] is JoinKind.PAIRED and e[1] == "worse"]
    assert sorted(e[2] for e in paired) == sorted(f"r{i}" for i in range(2, 8))
    assert "2 changelog values" in caplog.text and "not a join state" in caplog.text
    second.close()


def test_expiry_waits_for_the_end_of_every_partition_then_settles(tmp_path: Path) -> None:
    broker = _broker()
    for i in range(6):
        _publish(broker, f"r{i}", live=True, shadow=False, label=False)
    stage = _stage(broker, tmp_path, _experiments(pair_ttl=0.001, label_ttl=0.002))
    stage.poll(0)
    stage.expire()  # not read to the end of every partition yet: nothing expires
    assert _events(broker) == []
    _drain(stage)  # read to the end: the end-of-partition events
    time.sleep(1.1)  # deadlines are kept in whole seconds
    stage.expire()
    expired = [e for e in _events(broker) if e[0] is JoinKind.EXPIRED and e[1] == "worse"]
    assert sorted(e[2] for e in expired) == [f"r{i}" for i in range(6)]
    assert stage.pending == 0
    stage.close()


def test_undecodable_records_are_dead_lettered_in_the_transaction(tmp_path: Path) -> None:
    broker = _broker()
    broker.append(TOPICS.live_predictions, b"r1", b"junk", 0)
    stage = _stage(broker, tmp_path)
    _drain(stage)
    [(key, value)] = broker.records(TOPICS.dlq)
    letter = Codec().decode(value)
    assert isinstance(letter, DeadLetter) and key == b"r1"
    assert (letter.component, letter.error_type, letter.source_partition) == (
        "join",
        "undecodable",
        0,
    )
    assert broker.committed[GROUP][(TOPICS.live_predictions, 0)] == 1
    stage.close()


def test_an_input_too_large_for_the_state_is_dead_lettered_and_the_stream_goes_on(
    tmp_path: Path,
) -> None:
    broker = _broker()
    codec = Codec()
    big = Prediction("big", "churn", "v1", Role.LIVE, 1_000, "x" * 300_000, latency_ms=5.0)
    broker.append(TOPICS.live_predictions, b"big", codec.encode(big), 0)
    _publish(broker, "r1", live=True, shadow=True, label=False)
    stage = _stage(broker, tmp_path)
    _drain(stage)
    [(key, value)] = broker.records(TOPICS.dlq)
    letter = codec.decode(value)
    assert isinstance(letter, DeadLetter) and key == b"big"
    assert letter.error_type == "too_large" and "over stage 1's limit" in letter.reason
    assert letter.value == codec.encode(big)[:1024] and "sha256" in letter.reason
    assert [e for e in _events(broker) if e[1] == "worse"] == [(JoinKind.PAIRED, "worse", "r1")]
    assert "big" not in {k.decode() for k, _ in broker.records(TOPICS.join_state)}
    stage.close()


def test_stage_two_folds_the_events_and_dead_letters_junk(tmp_path: Path) -> None:
    broker = _broker()
    for i in range(30):
        _publish(broker, f"r{i}", live=True, shadow=True, label=True)
    pairs = _stage(broker, tmp_path / "pairs")
    _drain(pairs)
    pairs.close()
    clients = FakeClients(broker)
    judge = JudgeStage(
        SETTINGS, _experiments(), f"{GROUP}-judge", JoinMetrics(), tmp_path, clients=clients
    )
    judge.start()
    while judge.poll(0):
        pass
    assert "rebuilding" not in judge.status()
    broker.append(TOPICS.join_events, b"worse", b"junk", 0)  # after the rebuild: new junk
    while judge.poll(0):
        pass
    judge.publish_reports()
    judge.reports.flush(1)
    assert judge.latest["worse"]["counts"]
    codec = Codec()
    letters = [codec.decode(v) for _, v in broker.records(TOPICS.dlq)]
    assert [(d.component, d.error_type) for d in letters] == [("join", "undecodable")]  # type: ignore[union-attr]
    assert broker.records(TOPICS.metrics)
    judge.close()


def test_stage_two_resumes_from_checkpoints_that_skip_idle_experiments(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broker = _broker()
    for i in range(30):
        _publish(broker, f"r{i}", live=True, shadow=True, label=True)
    pairs = _stage(broker, tmp_path / "pairs")
    _drain(pairs)
    pairs.close()

    def judge_stage() -> JudgeStage:
        stage = JudgeStage(
            SETTINGS, _experiments(), f"{GROUP}-judge", JoinMetrics(), tmp_path,
            clients=FakeClients(broker),
        )  # fmt: skip
        stage.start()
        while stage.poll(0):
            pass
        return stage

    def state_files() -> list[str]:
        return sorted(p.name for p in tmp_path.glob("judge/*/partition-*/*"))

    first = judge_stage()
    for _ in range(4):  # the rules' hysteresis settles: idle reports change nothing more
        first.publish_reports()
    first.checkpoint(wait=True)
    written = state_files()
    assert len(written) == len(first.experiments.experiments)
    first.publish_reports()
    first.close()  # a last checkpoint: no experiment changed since the one before
    assert state_files() == written
    with caplog.at_level(logging.INFO, logger="streams.join"):
        second = judge_stage()
    resumed = caplog.text.count("resumes at offset")
    assert resumed == len(list(tmp_path.glob("judge/*/partition-*.manifest"))) > 0
    second.publish_reports()
    assert {n: r["counts"] for n, r in second.latest.items()} == {
        n: r["counts"] for n, r in first.latest.items()
    }
    assert second.latest["worse"]["counts"]["labelled"] == 30
    second.close()
