"""Stage 1 on raw bytes (:mod:`streams.join.slots`) against :class:`Pairing` (``pairing.py``
here, a test oracle) as the reference:
the same events, outcomes and state changes for random arrival orders, duplicates,
unknown records and expiry checks; and the packed state is the JoinSlot Avro record."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, replace

import pytest

from streams.avro_bytes import encode_long
from streams.codec import Codec
from streams.join.experiments import ExperimentsFile
from streams.join.keys import changelog_key, key_from_changelog, request_id_of, request_key
from streams.join.slot_state import Slot
from streams.join.slots import EncodedJoinEvent, JoinOutcome, SlotPairing
from streams.records import (
    GroundTruth,
    JoinEvent,
    JoinSlot,
    ModelInput,
    Prediction,
    Role,
)
from tests.unit.join.pairing import Pairing, PendingRequest

CODEC = Codec()

TWO_CANDIDATES = """
[join]
pair_ttl_s = 10
label_ttl_s = 100

[[experiments]]
name = "churn-v2"
model = "churn"
live_version = "v1"
candidates = ["v2", "v3"]
task = "binary"
"""
WITH_INPUTS = """
[join]
pair_ttl_s = 10
label_ttl_s = 100

[[experiments]]
name = "eta"
model = "eta"
live_version = "v1"
candidate = "v2"
task = "regression"
decision = "streams.downstream.delivery:promise_slot"
kpis = ["streams.downstream.delivery:delivery_kpis"]

[[experiments.metrics]]
name = "late"
kind = "paired"
higher_is_better = false

[[experiments]]
name = "eta-plain"
model = "eta"
live_version = "v1"
candidate = "v3"
task = "regression"
"""


def _pool(request_id: str, model: str, rng: random.Random) -> list[object]:
    """Every record a request can get, including ones the join must not accept."""
    segments = rng.choice([{}, {"country": "DE"}, {"country": "FR", "device": "ios"}])
    if model == "churn":
        value: object = rng.choice(["0", "1"])
        probabilities = rng.choice([None, {"1": 0.7, "0": 0.3}])
        label: float | str = rng.choice(["0", "1"])
    else:
        value, probabilities, label = rng.uniform(10, 40), None, rng.uniform(10, 40)
    live = Prediction(
        request_id, model, "v1", Role.LIVE, 1_000, value, probabilities, 5.0, None, segments
    )
    records: list[object] = [
        live,
        replace(live, version="v2", role=Role.SHADOW, latency_ms=7.5, segments={}),
        replace(live, version="v3", role=Role.SHADOW, error=rng.choice([None, "boom"])),
        replace(live, version="v9", role=Role.SHADOW),  # unknown version
        replace(live, model="other"),  # unknown model
        GroundTruth(request_id, model, 2_000, label),
    ]
    if model == "eta":
        records.append(
            ModelInput(
                request_id,
                model,
                900,
                {"distance_km": rng.uniform(1, 15), "prep_minutes": rng.uniform(5, 25)},
                {},
                segments,
            )
        )
    return records


@dataclass
class _Got:
    """What one SlotPairing call did, in the oracle's terms."""

    slot: Slot | None
    events: list[EncodedJoinEvent]
    outcome: JoinOutcome
    changed: bool


def _got(pairing: SlotPairing, before: Slot | None, kept: Slot | JoinOutcome | None) -> _Got:
    events = pairing.take_events()
    if isinstance(kept, JoinOutcome):
        outcome = JoinOutcome.ACCEPTED if kept is JoinOutcome.NOT_DUE else kept
        return _Got(before, events, outcome, False)
    return _Got(kept, events, JoinOutcome.ACCEPTED, True)


def _run(experiments_toml: str, seed: int) -> None:
    experiments = ExperimentsFile.parse(experiments_toml)
    model = experiments.experiments[0].model
    oracle = Pairing(experiments)
    pairing = SlotPairing.for_codec(experiments, CODEC)
    rng = random.Random(seed)
    states: dict[str, PendingRequest] = {}
    slots: dict[str, bytes] = {}
    now = 0
    for step_no in range(60):
        now += rng.choice([0, 1, 500, 3_000, 20_000])
        request_id = f"r{rng.randrange(4)}"
        if rng.random() < 0.2:
            # An expiry scan over everything pending.
            for rid in sorted(states):
                expected = oracle.expire(rid, states[rid], now)
                slot = Slot.unpack(slots[rid])
                got = _got(pairing, slot, pairing.expire(rid, slot, now))
                _same(expected, got, f"seed {seed} step {step_no} expire {rid}")
                _keep(states, slots, rid, expected, got)
            assert sorted(states) == sorted(slots)
            continue
        record = rng.choice(_pool(request_id, model, rng))
        state = states.get(request_id)
        raw_slot = slots.get(request_id)
        slot = None if raw_slot is None else Slot.unpack(raw_slot)
        raw = CODEC.encode(record)  # type: ignore[arg-type]
        if isinstance(record, GroundTruth):
            expected = oracle.on_label(state, record, now)
            got = _got(pairing, slot, pairing.add_label(slot, record, now))
        elif isinstance(record, ModelInput):
            expected = oracle.on_input(state, record, now)
            got = _got(pairing, slot, pairing.add_input(slot, record, raw, now))
        else:
            assert isinstance(record, Prediction)
            expected = oracle.on_prediction(state, record, now)
            got = _got(pairing, slot, pairing.add_prediction(slot, record, raw, now))
        assert got.outcome == expected.outcome, f"seed {seed} step {step_no}"
        _same(expected, got, f"seed {seed} step {step_no} {record}")
        _keep(states, slots, request_id, expected, got)


def _same(expected: object, got: object, where: str) -> None:
    events = [CODEC.decode_as(JoinEvent, e.value) for e in got.events]  # type: ignore[attr-defined]
    assert events == list(expected.events), where  # type: ignore[attr-defined]
    assert [(e.experiment, e.kind, e.reason) for e in got.events] == [  # type: ignore[attr-defined]
        (e.experiment, e.kind, e.reason)
        for e in expected.events  # type: ignore[attr-defined]
    ], where
    assert got.changed == expected.changed, where  # type: ignore[attr-defined]
    assert (got.slot is None) == (expected.state is None), where  # type: ignore[attr-defined]


def _keep(
    states: dict[str, PendingRequest],
    slots: dict[str, bytes],
    request_id: str,
    expected: object,
    got: object,
) -> None:
    state, slot = expected.state, got.slot  # type: ignore[attr-defined]
    if state is None:
        states.pop(request_id, None)
        slots.pop(request_id, None)
        return
    states[request_id] = state
    slots[request_id] = slot.pack()
    assert slot.closed == list(state.closed)
    assert slot.labelled == list(state.labelled)
    assert (slot.live is None) == (state.live is None)
    assert sorted(slot.candidates) == sorted(c.version for c in state.candidates)


@pytest.mark.parametrize("seed", range(150))
def test_same_events_as_pairing_for_two_candidates(seed: int) -> None:
    _run(TWO_CANDIDATES, seed)


@pytest.mark.parametrize("seed", range(150))
def test_same_events_as_pairing_with_inputs_and_downstream_functions(seed: int) -> None:
    _run(WITH_INPUTS, seed)


def test_packed_state_is_the_join_slot_avro_record() -> None:
    slot = Slot("churn", 1_764_201_600_000, b"\x02\x04ab\x02c\x00")
    slot.live = b"live-bytes"
    slot.candidates = {"v2": b"c2", "v3": b""}
    slot.label = b"\x04\x021"
    slot.closed = ["a", "b"]
    slot.labelled = ["a"]
    packed = slot.pack()
    record = JoinSlot(
        "churn",
        1_764_201_600_000,
        b"\x02\x04ab\x02c\x00",
        b"live-bytes",
        {"v2": b"c2", "v3": b""},
        None,
        b"\x04\x021",
        ("a", "b"),
        ("a",),
    )
    assert packed == CODEC.encode(record)[5:]
    assert CODEC.decode(CODEC.header_of(JoinSlot) + packed) == record
    again = Slot.unpack(packed)
    assert again.pack() == packed
    assert Slot.first_seen(packed) == 1_764_201_600_000
    empty = Slot("m", -5)
    assert Slot.unpack(empty.pack()).first_seen_ms == -5
    assert empty.pack() == CODEC.encode(JoinSlot("m", -5))[5:]


@pytest.mark.parametrize("n", [0, 1, -1, 63, 64, -65, 2**31, -(2**63), 2**63 - 1])
def test_longs_are_avro_zigzag_varints(n: int) -> None:
    record = JoinSlot("m", n)
    assert Slot("m", n).pack() == CODEC.encode(record)[5:]
    assert encode_long(n) in CODEC.encode(record)


def test_a_prediction_from_another_writer_layout_is_re_encoded() -> None:
    """Two map blocks for the segments: valid Avro, not how we write it."""
    experiments = ExperimentsFile.parse(TWO_CANDIDATES)
    pairing = SlotPairing.for_codec(experiments, CODEC)
    segments = {"a": "x", "b": "y"}
    live = Prediction("r1", "churn", "v1", Role.LIVE, 0, "1", None, 1.0, None, segments)
    canonical = CODEC.encode(live)
    one_block = b"\x04\x02a\x02x\x02b\x02y\x00"
    assert canonical.count(one_block) == 1
    odd = canonical.replace(one_block, b"\x02\x02a\x02x\x02\x02b\x02y\x00")
    assert CODEC.decode(odd) == live
    slot = pairing.add_prediction(None, live, odd, 0)
    assert isinstance(slot, Slot)
    v2 = replace(live, version="v2", role=Role.SHADOW)
    pairing.add_prediction(slot, v2, CODEC.encode(v2), 0)
    event = CODEC.decode_as(JoinEvent, pairing.take_events()[0].value)
    assert event.live == live
    assert event.candidate == v2


@pytest.mark.parametrize(
    "request_id",
    [
        "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        "00000000-0000-0000-0000-000000000000",
        "ffffffff-ffff-ffff-ffff-ffffffffffff",
        "0190A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B",  # upper case: kept as text
        "0190a1b2-c3d4-7e5f-8a9b-0c1d_e3f4a5b",  # int() would take the "_"
        "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5g",
        "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5\u0663",  # a non-ASCII digit
        "sixteen-bytes-id",
        "\u00ffteen-bytes-i",
        "order-17",
        "",
    ],
)
def test_store_and_changelog_keys_give_back_the_request_id(request_id: str) -> None:
    key = request_key(request_id)
    assert request_id_of(key) == request_id
    assert key_from_changelog(changelog_key(key)) == key


def test_no_two_request_ids_share_a_key() -> None:
    ids = [str(uuid.uuid4()) for _ in range(200)]
    ids += [i.upper() for i in ids] + ["x" * 16, "y" * 17, "\u00ff" + "z" * 14]
    keys = {changelog_key(request_key(i)) for i in ids}
    assert len(keys) == len(ids)
