"""The transactional batch: commit, retry, abort and rewind, fatal errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from confluent_kafka import KafkaError, KafkaException

from streams.kafka import ProducerWrapper, TransactionalBatch
from streams.kafka.transaction import Fenced
from tests.unit.kafka.fakes import FakeBroker, FakeClients, FakeError


class Guard:
    def __init__(self) -> None:
        self.guarded: list[str] = []

    @contextlib.contextmanager
    def guard(self, what: str) -> Iterator[None]:
        self.guarded.append(what)
        yield


class Pauses(list[float]):
    """Records the batch's pauses between repeated calls instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def _batch() -> tuple[FakeBroker, TransactionalBatch, list[str], Guard]:
    broker = FakeBroker()
    broker.create("in", "out")
    clients = FakeClients(broker)
    producer = ProducerWrapper({"transactional.id": "t-1"}, clients=clients)
    consumer = clients.consumer({"group.id": "g"})
    rewinds: list[str] = []
    guard = Guard()
    batch = TransactionalBatch(
        producer, consumer, guard, lambda: rewinds.append("rewound"), sleep=Pauses()
    )
    batch.init()
    return broker, batch, rewinds, guard


def test_records_and_offsets_appear_together_on_commit() -> None:
    broker, batch, rewinds, guard = _batch()
    batch.begin()
    batch.produce("out", b"v1", b"k", 0)
    batch.produce("out", b"v2", b"k", 0)
    assert broker.records("out") == []  # nothing visible before the commit
    assert batch.commit({("in", 0): 42})
    assert broker.records("out") == [(b"k", b"v1"), (b"k", b"v2")]
    assert broker.committed["g"] == {("in", 0): 42}
    assert rewinds == [] and guard.guarded == ["committing a transaction"]
    assert not batch.open and batch.committed == 1


def test_a_retriable_failure_is_retried() -> None:
    broker, batch, rewinds, _ = _batch()
    broker.commit_errors.append(FakeError(KafkaError._TIMED_OUT, "slow", retriable=True))
    batch.begin()
    batch.produce("out", b"v", b"k", 0)
    assert batch.commit({("in", 0): 1})
    assert broker.records("out") == [(b"k", b"v")] and rewinds == []


def test_an_abortable_failure_aborts_and_rewinds_and_shows_nothing() -> None:
    broker, batch, rewinds, guard = _batch()
    broker.commit_errors.append(FakeError(KafkaError._FENCED, "fenced", abort=True))
    batch.begin()
    batch.produce("out", b"v", b"k", 0)
    assert not batch.commit({("in", 0): 1})
    assert broker.records("out") == [] and "g" not in broker.committed
    assert rewinds == ["rewound"] and batch.aborted == 1
    assert guard.guarded[-1] == "aborting a transaction"
    batch.begin()  # the next batch starts clean
    batch.produce("out", b"again", b"k", 0)
    assert batch.commit({("in", 0): 1})
    assert broker.records("out") == [(b"k", b"again")]


def test_a_commit_that_keeps_timing_out_is_resumed_never_given_up_for_an_abort() -> None:
    # librdkafka goes on with a timed-out commit; an abort meanwhile fails with _CONFLICT.
    broker, batch, rewinds, guard = _batch()
    broker.commit_errors.extend(
        FakeError(KafkaError._TIMED_OUT, "cluster away", retriable=True) for _ in range(12)
    )
    batch.begin()
    batch.produce("out", b"v", b"k", 0)
    assert batch.commit({("in", 0): 5})
    assert broker.records("out") == [(b"k", b"v")] and broker.committed["g"] == {("in", 0): 5}
    assert rewinds == [] and batch.aborted == 0 and broker.commit_errors == []
    assert guard.guarded == ["committing a transaction"] * 13  # each call watched alone
    assert batch.sleep == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0]


def test_offsets_that_time_out_are_sent_again_and_only_then_the_commit_made() -> None:
    broker, batch, rewinds, _ = _batch()
    broker.offsets_errors.append(FakeError(KafkaError._TIMED_OUT, "slow", retriable=True))
    broker.commit_errors.append(FakeError(KafkaError._TIMED_OUT, "slow", retriable=True))
    batch.begin()
    batch.produce("out", b"v", b"k", 0)
    assert batch.commit({("in", 0): 9})  # offsets, offsets again, commit, commit again
    assert broker.records("out") == [(b"k", b"v")] and broker.committed["g"] == {("in", 0): 9}
    assert rewinds == [] and batch.sleep == [0.1, 0.2]


def test_another_transactional_call_still_pending_stops_the_process_as_fenced() -> None:
    broker, batch, rewinds, _ = _batch()
    broker.commit_errors.append(
        FakeError(KafkaError._CONFLICT, "abort_transaction in progress", retriable=True)
    )
    batch.begin()
    with pytest.raises(Fenced):  # retrying cannot end it; the join restarts in place
        batch.commit({("in", 0): 1})
    assert rewinds == [] and batch.sleep == [] and not batch.open


def test_a_fatal_failure_is_raised() -> None:
    broker, batch, rewinds, _ = _batch()
    broker.commit_errors.append(FakeError(KafkaError._FENCED, "taken over", fatal=True))
    batch.begin()
    with pytest.raises(Fenced):  # a KafkaException: fenced by a newer instance
        batch.commit({("in", 0): 1})
    assert rewinds == [] and not batch.open


def test_another_fatal_failure_is_raised_as_it_is() -> None:
    broker, batch, _, _ = _batch()
    broker.commit_errors.append(FakeError(KafkaError._FATAL, "broken", fatal=True))
    batch.begin()
    with pytest.raises(KafkaException) as raised:
        batch.commit({("in", 0): 1})
    assert not isinstance(raised.value, Fenced)


def test_an_abort_that_times_out_is_retried_until_the_cluster_answers() -> None:
    broker, batch, rewinds, guard = _batch()
    broker.commit_errors.append(FakeError(KafkaError._FENCED, "fenced", abort=True))
    broker.abort_errors.extend(
        FakeError(KafkaError._TIMED_OUT, "retry call to resume", retriable=True) for _ in range(5)
    )
    batch.begin()
    batch.produce("out", b"v", b"k", 0)
    assert not batch.commit({("in", 0): 1})
    assert broker.abort_errors == [] and rewinds == ["rewound"] and batch.aborted == 1
    assert guard.guarded.count("aborting a transaction") == 6  # each call watched alone
    assert broker.records("out") == [] and batch.sleep == [0.1, 0.2, 0.4, 0.8, 1.6]


def test_a_zombie_fenced_while_aborting_is_raised_as_fenced() -> None:
    broker, batch, rewinds, _ = _batch()
    broker.commit_errors.append(FakeError(KafkaError._TIMED_OUT, "timed out", abort=True))
    broker.abort_errors.append(FakeError(KafkaError._FENCED, "a newer instance", fatal=True))
    batch.begin()
    with pytest.raises(Fenced):
        batch.commit({("in", 0): 1})
    assert rewinds == []
