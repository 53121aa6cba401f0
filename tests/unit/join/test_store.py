"""The stage-1 state stores (memory:// and rocksdb://) keep the same contract, with both
kinds of request key; and the watchdog that restarts a worker stuck in a client call."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from streams.join.deadlines import Deadlines
from streams.join.keys import request_key
from streams.join.store import StateStore, open_store
from streams.kafka.watchdog import Watchdog

UUID_ID = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"


@pytest.mark.parametrize("url", ["memory://", "rocksdb://"])
def test_store_contract(url: str, tmp_path: Path) -> None:
    store: StateStore = open_store(url, tmp_path)
    keys = [request_key(UUID_ID), request_key("order-17"), request_key("sixteen-bytes-id")]
    for n, key in enumerate(keys):
        store.put(key, b"v%d" % n)
    store.put(keys[0], b"newer")
    assert len(store) == 3
    assert store.get(keys[0]) == b"newer"
    assert store.get(request_key("absent")) is None
    assert dict(store.items()) == {keys[0]: b"newer", keys[1]: b"v1", keys[2]: b"v2"}
    store.delete(keys[1])
    store.delete(keys[1])  # deleting what is gone is fine
    assert len(store) == 2 and store.get(keys[1]) is None
    store.clear()
    assert len(store) == 0 and list(store.items()) == []
    store.put(keys[2], b"again")
    assert store.get(keys[2]) == b"again"
    store.close()


def test_rocksdb_store_leaves_nothing_behind(tmp_path: Path) -> None:
    store = open_store("rocksdb://", tmp_path)
    store.put(b"k", b"v")
    store.close()
    assert list(tmp_path.iterdir()) == []


def test_unknown_store_url_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'redis://'"):
        open_store("redis://", tmp_path)


def test_deadlines_give_each_key_back_once_when_due_in_time_order() -> None:
    due: Deadlines[int] = Deadlines()
    for key, at in [(1, 3_000), (2, 1_000), (3, 2_500), (4, 1_001), (5, 9_000)]:
        due.add(key, at)
    assert list(due.pop_due(999)) == []
    assert list(due.pop_due(2_000)) == [2, 4]  # 1_001 rounds up to second 2
    assert list(due.pop_due(3_000)) == [1, 3]  # both in second 3, in the order filed
    assert len(due) == 1
    due.add(6, 0)
    assert list(due.pop_due(10_000)) == [6, 5]
    assert len(due) == 0
    due.add(7, 1)
    due.clear()
    assert list(due.pop_due(10**12)) == [] and len(due) == 0


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
