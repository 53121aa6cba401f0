"""A join state written by JoinSlot version 1 (its stored predictions Prediction version 1,
without the cost fields) is upgraded as stage 1 restores it, and its requests still pair."""

from __future__ import annotations

from pathlib import Path

from streams.codec import Codec
from streams.join.slot_state import Slot
from streams.records import JoinEventBatch, JoinKind, JoinSlot, Prediction
from tests.unit.join.test_stage_loops import TOPICS, _broker, _drain, _publish
from tests.unit.join.test_stage_state import _stage

COST_FIELDS = 6
"""Bytes Prediction version 2 adds to a stored prediction when its cost fields are null."""


def test_a_version_1_changelog_is_restored_upgraded_and_its_requests_pair(tmp_path: Path) -> None:
    broker = _broker()
    ids = [f"r{i}" for i in range(12)]
    for request_id in ids:
        _publish(broker, request_id, live=True, shadow=False, label=False)
    first = _stage(broker, tmp_path / "first", "memory://")
    _drain(first)
    first.close()
    # Rewrite the changelog as version 1 wrote it: its header, stored lives without costs.
    codec = Codec()
    new, old = codec.header_of(JoinSlot), codec.header_of(JoinSlot, version=1)
    rewritten = 0
    for log in broker.topics[TOPICS.join_state]:
        for at, (key, value) in enumerate(log):
            if value is None:
                continue
            assert value.startswith(new)
            slot = Slot.unpack(value[len(new) :])
            assert slot.live is not None and slot.live.endswith(bytes(COST_FIELDS))
            slot.live = slot.live[:-COST_FIELDS]
            log[at] = (key, old + slot.pack())
            rewritten += 1
    assert rewritten == len(ids)
    second = _stage(broker, tmp_path / "second", "memory://")
    assert second.pending == len(ids)  # none dropped as a foreign schema
    for request_id in ids:
        _publish(broker, request_id, live=False, shadow=True, label=False)
    _drain(second)
    second.close()
    lives = [
        event.live
        for _, value in broker.records(TOPICS.join_events)
        for event in codec.decode_as(JoinEventBatch, value).events
        if event.kind is JoinKind.PAIRED and event.experiment == "worse"
    ]
    assert sorted(p.request_id for p in lives if p is not None) == sorted(ids)
    for live in lives:
        assert isinstance(live, Prediction) and live.value == "yes" and live.latency_ms == 5.0
        assert live.cpu_ms is None and live.worker is None
