"""Join stage 1's persistent ``rocksdb://`` state on an in-process fake of the Kafka layer:
a restart replays only the changelog's tail and ends in the same state as a full rebuild;
a store that cannot be trusted is rebuilt (the real broker:
tests/integration/test_join_state.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from streams.join.experiments import ExperimentsFile
from streams.join.metrics import JoinMetrics
from streams.join.stage_pairs import PairStage
from streams.records import JoinKind
from tests.unit.join.experiments_toml import CANDIDATES_TOML
from tests.unit.join.test_stage_loops import (
    GROUP,
    SETTINGS,
    TOPICS,
    NoWatchdog,
    _broker,
    _drain,
    _events,
    _publish,
)
from tests.unit.kafka.fakes import FakeAdmin, FakeBroker, FakeClients


def _experiments(store: str, pair_ttl: float = 3600, label_ttl: float = 7200) -> ExperimentsFile:
    toml = CANDIDATES_TOML.format(pair_ttl=pair_ttl, label_ttl=label_ttl)
    return ExperimentsFile.parse(toml.replace("[join]\n", f'[join]\nstore = "{store}"\n', 1))


def _stage(
    broker: FakeBroker, data_dir: Path, store: str = "rocksdb://", **ttl: float
) -> PairStage:
    stage = PairStage(
        SETTINGS,
        _experiments(store, **ttl),
        GROUP,
        JoinMetrics(),
        data_dir,
        watchdog=NoWatchdog(),  # type: ignore[arg-type]
        clients=FakeClients(broker),
    )
    stage.start()
    stage.poll(0)  # joins the group: assigned and restored
    return stage


def _contents(stage: PairStage) -> dict[int, dict[object, bytes]]:
    return {p: dict(store.items()) for p, store in stage.parts.items()}


def _run(broker: FakeBroker, data_dir: Path, store: str = "rocksdb://") -> PairStage:
    stage = _stage(broker, data_dir, store)
    _drain(stage)
    return stage


def test_a_restart_replays_only_the_tail_and_equals_a_full_rebuild(tmp_path: Path) -> None:
    broker = _broker()
    for i in range(30):
        _publish(broker, f"r{i}", live=True, shadow=False, label=False)
    _run(broker, tmp_path / "kept").close()  # records the changelog's end
    written = sum(len(log) for log in broker.topics[TOPICS.join_state])
    # Meanwhile another worker owned the partitions: it paired some, saw new requests.
    for i in range(20, 40):
        _publish(broker, f"r{i}", live=True, shadow=True, label=i < 25)
    _run(broker, tmp_path / "elsewhere", "memory://").close()
    tail = sum(len(log) for log in broker.topics[TOPICS.join_state]) - written
    assert tail > 0
    # Back on the first data dir: only what the other worker wrote is read.
    resumed = _stage(broker, tmp_path / "kept")
    assert sum(r.records for r in resumed.state.last_restore.values()) == tail
    assert all(r.rebuilt is None for r in resumed.state.last_restore.values())
    rebuilt = _stage(broker, tmp_path / "fresh")
    assert all(r.rebuilt == "no offset recorded" for r in rebuilt.state.last_restore.values())
    assert _contents(resumed) == _contents(rebuilt)
    assert resumed.pending == rebuilt.pending == 40
    # The resumed store pairs what it restored, once.
    for i in range(10):
        _publish(broker, f"r{i}", live=False, shadow=True, label=False)
    _drain(resumed)
    paired = [e[2] for e in _events(broker) if e[0] is JoinKind.PAIRED and e[1] == "worse"]
    assert sorted(paired) == sorted(f"r{i}" for i in [*range(10), *range(20, 40)])
    resumed.close()
    rebuilt.close()


def test_a_store_of_a_re_created_changelog_is_rebuilt_not_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = _broker()
    for i in range(12):
        _publish(broker, f"old{i}", live=True, shadow=False, label=False)
    _run(broker, tmp_path).close()
    # The topics deleted and created again (a new topic id), then longer than before.
    fresh = _broker()
    for i in range(40):
        _publish(fresh, f"new{i}", live=True, shadow=False, label=False)
    _run(fresh, tmp_path / "other", "memory://").close()
    assert all(
        len(new) >= len(old)
        for new, old in zip(
            fresh.topics[TOPICS.join_state], broker.topics[TOPICS.join_state], strict=True
        )
    )
    described = FakeAdmin.describe_topics
    monkeypatch.setattr(
        FakeAdmin,
        "describe_topics",
        lambda self, topics, **kw: {
            n: type(r)(type(r.value)(topic_id=f"new-{n}"))
            for n, r in described(self, topics, **kw).items()
        },
    )
    stage = _stage(fresh, tmp_path)
    reasons = {r.rebuilt for r in stage.state.last_restore.values()}
    assert reasons == {"made from another changelog topic of that name (created again since)"}
    assert sorted(k for part in _contents(stage).values() for k in part) == sorted(
        f"new{i}".encode() for i in range(40)
    )
    stage.close()


def test_a_store_ahead_of_its_changelog_is_rebuilt(tmp_path: Path) -> None:
    broker = _broker()
    for i in range(12):
        _publish(broker, f"r{i}", live=True, shadow=False, label=False)
    _run(broker, tmp_path).close()
    for log in broker.topics[TOPICS.join_state]:
        del log[len(log) // 2 :]  # the changelog lost its end (same topic id)
    stage = _stage(broker, tmp_path)
    reasons = {r.rebuilt for r in stage.state.last_restore.values() if r.rebuilt}
    assert reasons and all(reason.startswith("ahead of the changelog") for reason in reasons)
    assert stage.pending == sum(
        len({k for k, _ in log}) for log in broker.topics[TOPICS.join_state]
    )
    stage.close()


def test_deadlines_on_disk_expire_after_a_restart(tmp_path: Path) -> None:
    broker = _broker()
    for i in range(6):
        _publish(broker, f"r{i}", live=True, shadow=False, label=False)
    first = _stage(broker, tmp_path, pair_ttl=0.001, label_ttl=0.002)
    _drain(first)
    first.close()
    second = _stage(broker, tmp_path, pair_ttl=0.001, label_ttl=0.002)
    assert sum(r.records for r in second.state.last_restore.values()) == 0
    _drain(second)
    time.sleep(1.1)  # deadlines are kept in whole seconds
    second.expire()
    expired = [e[2] for e in _events(broker) if e[0] is JoinKind.EXPIRED and e[1] == "worse"]
    assert sorted(expired) == [f"r{i}" for i in range(6)]
    assert second.pending == 0
    assert all(store.due(10**13, 10) == [] for store in second.parts.values())
    second.close()


def test_a_store_whose_deadlines_were_filed_under_other_ttls_is_rebuilt(tmp_path: Path) -> None:
    broker = _broker()
    for i in range(6):
        _publish(broker, f"r{i}", live=True, shadow=False, label=False)
    _run(broker, tmp_path).close()
    shorter = _stage(broker, tmp_path, pair_ttl=60, label_ttl=120)
    reasons = {r.rebuilt for r in shorter.state.last_restore.values() if r.rebuilt}
    assert reasons == {"its deadlines were filed under other TTLs"}
    assert shorter.pending == 6
    shorter.close()


def test_the_restore_runs_in_the_loop_with_the_inputs_paused_and_survives_a_rebalance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long restore is done in steps between polls (never inside the assignment
    callback, so the group keeps the member); the inputs wait paused, expiry and the
    stores' offsets wait for it; a rebalance midway abandons it and the next one redoes
    it; the counts are exact."""
    import streams.join.pairs_restore
    import streams.join.stage_pairs

    broker = _broker()
    for i in range(40):
        _publish(broker, f"r{i}", live=True, shadow=False, label=False)
    _run(broker, tmp_path / "first").close()
    for i in range(40):
        _publish(broker, f"r{i}", live=False, shadow=True, label=False)
    written = sum(len(log) for log in broker.topics[TOPICS.join_state])
    monkeypatch.setattr(streams.join.pairs_restore, "READ_BATCH", 2)
    monkeypatch.setattr(streams.join.stage_pairs, "RESTORE_STEP_S", 0.0)
    stage = _stage(broker, tmp_path / "second", pair_ttl=0.001, label_ttl=0.002)
    consumer = stage.consumer
    assert stage.state.restoring and "(restoring)" in stage.status()
    assert consumer.paused == {(tp.topic, tp.partition) for tp in consumer.assignment()}
    assert stage.poll(0) == 1 and stage.processed == 0  # one more step, no input read
    stage.expire()  # waits for the restore: no request declared missing
    assert _events(broker) == []
    assert all(store.persisted() is None for store in stage.parts.values())
    consumer.revoke()  # a rebalance midway: the restore is abandoned ...
    assert not stage.state.restoring and not stage.parts
    consumer.subscribe(stage.sources, on_assign=stage._on_assign, on_revoke=stage._on_revoke)
    steps = 0
    while stage.state.restoring or steps == 0:  # ... and begun again at the next assignment
        stage.poll(0)
        steps += 1
    assert steps > 3 and not consumer.paused
    assert sum(r.records for r in stage.state.last_restore.values()) == written
    _drain(stage)
    paired = [e for e in _events(broker) if e[0] is JoinKind.PAIRED and e[1] == "worse"]
    assert sorted(e[2] for e in paired) == sorted(f"r{i}" for i in range(40))
    stage.close()
