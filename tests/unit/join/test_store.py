"""The stage-1 state stores (memory:// and rocksdb://) keep the same contract, with both
kinds of request key, deadlines included; rocksdb:// outlives the process; and the
watchdog that restarts a worker stuck in a client call."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.join.deadlines import Deadlines
from streams.join.keys import request_key
from streams.join.store import PartitionStore, Persisted
from streams.join.stores import Stores
from streams.kafka.watchdog import Watchdog

UUID_ID = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"


def _open(url: str, tmp_path: Path, partition: int = 0) -> PartitionStore:
    return Stores(url, tmp_path).open(partition)


@pytest.mark.parametrize("url", ["memory://", "rocksdb://"])
def test_store_contract(url: str, tmp_path: Path) -> None:
    store = _open(url, tmp_path)
    keys = [request_key(UUID_ID), request_key("order-17"), request_key("sixteen-bytes-id")]
    store.write({key: b"v%d" % n for n, key in enumerate(keys)})
    store.write({keys[0]: b"newer"})
    assert len(store) == 3
    assert store.get(keys[0]) == b"newer"
    assert store.get(request_key("absent")) is None
    assert dict(store.items()) == {keys[0]: b"newer", keys[1]: b"v1", keys[2]: b"v2"}
    store.write({keys[1]: None})
    store.write({keys[1]: None, request_key("never"): None})  # deleting what is gone is fine
    assert len(store) == 2 and store.get(keys[1]) is None
    store.wipe()
    assert len(store) == 0 and list(store.items()) == []
    store.write({keys[2]: b"again"})
    assert store.get(keys[2]) == b"again"
    store.close()


@pytest.mark.parametrize("url", ["memory://", "rocksdb://"])
def test_store_deadlines_come_due_in_time_order_and_settle(url: str, tmp_path: Path) -> None:
    store = _open(url, tmp_path)
    a, b, c = request_key(UUID_ID), request_key("order-17"), request_key("order-18")
    store.write({a: b"x", b: b"y", c: b"z"}, filed=[(a, 3_000), (b, 1_000), (c, 9_000)])
    assert store.due(999, 10) == []
    first = store.due(3_000, 1)  # a limit: the rest stays filed
    assert [key for key, _ in first] == [b]
    store.write({b: None}, settled=first)
    due = store.due(3_000, 10)
    assert [key for key, _ in due] == [a]
    store.write({}, filed=[(a, 5_000)], settled=due)  # filed again, later
    assert store.due(4_000, 10) == []
    assert [key for key, _ in store.due(10_000, 10)] == [a, c]
    store.close()


def test_rocksdb_store_outlives_the_process_with_what_it_recorded(tmp_path: Path) -> None:
    stores = Stores("rocksdb://?cache_mb=8&write_buffer_mb=4", tmp_path)
    store = stores.open(2)
    key = request_key(UUID_ID)
    store.write({key: b"state"}, filed=[(key, 1_000)])
    assert store.persisted() is None
    seen = Persisted(offset=42, topic_id="id-x", header=b"\x00\x00\x00\x00\x07", written_ms=5)
    store.mark(seen)
    store.close()
    again = stores.open(2)
    assert again.get(key) == b"state" and len(again) == 1
    assert again.persisted() == seen
    assert [k for k, _ in again.due(1_000, 10)] == [key]
    again.wipe()
    assert again.persisted() is None and len(again) == 0 and again.due(10**12, 10) == []
    again.close()
    assert (tmp_path / "partition-2").is_dir()


def test_rocksdb_items_stream_from_the_database(tmp_path: Path) -> None:
    store = _open("rocksdb://", tmp_path)
    store.write({b"r%05d" % i: b"v" for i in range(2_000)})
    items = store.items()
    assert isinstance(items, Iterator) and not isinstance(items, list)
    assert next(items) == (b"r00000", b"v")
    assert sum(1 for _ in items) == 1_999
    store.close()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis://", "use memory:// or rocksdb://"),
        ("memory://?cache_mb=3", "unknown parameter 'cache_mb'"),
        ("rocksdb://?cache_mb=0", "cache_mb must be a whole number"),
        ("rocksdb://?block_mb=3", "unknown parameter 'block_mb'"),
    ],
)
def test_a_bad_store_url_is_named(url: str, problem: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        Stores(url, tmp_path)


def test_deadlines_give_each_key_back_once_when_due_in_time_order() -> None:
    due: Deadlines[int] = Deadlines()
    for key, at in [(1, 3_000), (2, 1_000), (3, 2_500), (4, 1_001), (5, 9_000)]:
        due.add(key, at)
    assert due.take_due(999, 10) == []
    assert due.take_due(2_000, 10) == [2, 4]  # 1_001 rounds up to second 2
    assert due.take_due(3_000, 1) == [1]  # both in second 3, in the order filed; a limit
    assert due.take_due(3_000, 10) == [3]
    assert len(due) == 1
    due.add(6, 0)
    assert due.take_due(10_000, 10) == [6, 5]
    assert len(due) == 0
    due.add(7, 1)
    due.clear()
    assert due.take_due(10**12, 10) == [] and len(due) == 0


def test_watchdog_reports_a_stall_once_and_not_a_quick_call() -> None:
    stalls: list[str] = []
    seen = threading.Event()
    dog = Watchdog(0.1, lambda what: (stalls.append(what), seen.set()), tick_s=0.01)
    try:
        with dog.guard("quick"):
            pass
        with dog.guard("slow"):
            assert seen.wait(2)
            time.sleep(0.1)
        time.sleep(0.1)
        assert stalls == ["slow"]
    finally:
        dog.close()


def test_a_persistent_store_makes_its_worker_a_static_group_member(tmp_path: Path) -> None:
    member = Stores("rocksdb://", tmp_path / "a").group_member("g")
    assert member == Stores("rocksdb://", tmp_path / "a").group_member("g")  # after a restart
    assert member != Stores("rocksdb://", tmp_path / "b").group_member("g")
    assert member["group.instance.id"].startswith("g-")
    assert Stores("memory://", tmp_path / "a").group_member("g") == {}
