"""The C Slot.pack / Slot.unpack / request_key / join_event (``streams/join/_cslots.c``) give
the Python ones' bytes and slots, exactly; on anything else the C ones step aside and
Python decides."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams import avro_bytes
from streams.codec import Codec
from streams.join import keys, slot_events, slot_state
from streams.join.slot_state import Slot
from streams.records import JoinSlot
from tests.unit.native import skip_unless_buildable

native: Any = slot_state._native
needs_native = pytest.mark.skipif(native is None, reason="the C slot module is not built")
needs_native_events = pytest.mark.skipif(
    not slot_events.NATIVE, reason="the C join events are not built or not for this layout"
)
CODEC = Codec()

text = st.text(max_size=70)
blob = st.binary(max_size=140)
slots = st.builds(
    lambda model, first_seen, segments, live, candidates, inputs, label, closed, labelled: _slot(
        model, first_seen, segments, live, candidates, inputs, label, closed, labelled
    ),
    text,
    st.integers(-(2**63), 2**63 - 1),
    blob,
    st.none() | blob,
    st.dictionaries(text, blob, max_size=70),
    st.none() | blob,
    st.none() | blob,
    st.lists(text, max_size=70),
    st.lists(text, max_size=3),
)


def _slot(
    model: str,
    first_seen: int,
    segments: bytes,
    live: bytes | None,
    candidates: dict[str, bytes],
    inputs: bytes | None,
    label: bytes | None,
    closed: list[str],
    labelled: list[str],
) -> Slot:
    slot = Slot(model, first_seen, segments)
    slot.live, slot.inputs, slot.label = live, inputs, label
    slot.candidates.update(candidates)
    slot.closed.extend(closed)
    slot.labelled.extend(labelled)
    return slot


def state(slot: Slot) -> dict[str, Any]:
    return {name: getattr(slot, name) for name in Slot.__slots__}


def python_unpack(data: bytes) -> Slot | tuple[type[Exception], str]:
    try:
        return Slot.unpack_python(data)
    except Exception as exc:  # compared below, not hidden
        return type(exc), str(exc)


def test_the_c_slots_are_in_use_wherever_a_compiler_is() -> None:
    skip_unless_buildable()
    assert slot_state.NATIVE, "rebuild: make install"


@needs_native
@given(slots)
@settings(max_examples=400, deadline=None)
def test_pack_and_unpack_match_python_and_fastavro(slot: Slot) -> None:
    packed = native.pack(slot)
    assert packed == slot.pack_python()
    assert type(native.unpack(packed)) is Slot
    assert state(native.unpack(packed)) == state(Slot.unpack_python(packed)) == state(slot)
    record = CODEC.decode(CODEC.header_of(JoinSlot) + packed)
    assert isinstance(record, JoinSlot) and record.candidates == slot.candidates


@needs_native
@given(slots, st.data())
@settings(max_examples=400, deadline=None)
def test_corrupt_or_cut_bytes_unpack_as_python_does_or_step_aside(
    slot: Slot, data: st.DataObject
) -> None:
    corrupt = bytearray(slot.pack_python())
    for _ in range(data.draw(st.integers(0, 3))):
        if corrupt:
            corrupt[data.draw(st.integers(0, len(corrupt) - 1))] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        del corrupt[data.draw(st.integers(0, len(corrupt))) :]
    read = native.unpack(bytes(corrupt))
    expected = python_unpack(bytes(corrupt))
    if read is not None:  # whatever C reads, Python reads the same way
        assert isinstance(expected, Slot) and state(read) == state(expected)
    # And the public unpack always ends as Python's.
    try:
        public: Any = Slot.unpack(bytes(corrupt))
    except Exception as exc:
        public = (type(exc), str(exc))
    assert (state(public) if isinstance(public, Slot) else public) == (
        state(expected) if isinstance(expected, Slot) else expected
    )


@needs_native
def test_every_truncation_steps_aside() -> None:
    slot = _slot("m", 1_764_201_600_000, b"\x00", b"live", {"v2": b"c"}, None, b"\x02x", ["e"], [])
    packed = slot.pack_python()
    for cut in range(len(packed)):
        assert native.unpack(packed[:cut]) is None
        with pytest.raises(ValueError):
            Slot.unpack(packed[:cut])


@needs_native
@pytest.mark.parametrize("tenth_byte", [b"\x01", b"\x02", b"\x7f"])
def test_a_first_seen_varint_of_ten_bytes_unpacks_as_python_does(tenth_byte: bytes) -> None:
    """Past 64 bits both step aside: no Avro long is that long (fastavro would wrap around,
    Python's ints would not), so the Python unpack names it."""
    packed = Slot("m", 5).pack_python()
    body = packed[:2] + b"\xff" * 9 + tenth_byte + packed[3:]
    read = native.unpack(body)
    if tenth_byte == b"\x01":  # exactly 64 bits
        assert read is not None
        assert state(read) == state(Slot.unpack_python(body))
    else:
        assert read is None
        with pytest.raises(ValueError, match="past 64 bits"):
            Slot.unpack(body)


@needs_native_events
@pytest.mark.parametrize(
    "change",
    [
        lambda s: setattr(s, "live", bytearray(b"x")),
        lambda s: setattr(s, "segments", memoryview(b"\x00")),
        lambda s: setattr(s, "closed", ("e",)),
        lambda s: setattr(s, "first_seen_ms", 2**70),
        lambda s: s.candidates.update({"v": bytearray(b"x")}),
    ],
)
def test_unusual_values_are_left_to_the_python_pack(change: Any) -> None:
    slot = _slot("m", 5, b"\x00", b"live", {"v2": b"c"}, None, None, [], [])
    change(slot)
    assert native.pack(slot) is None
    try:
        expected: Any = slot.pack_python()
    except Exception as exc:
        expected = type(exc)
    try:
        public: Any = slot.pack()
    except Exception as exc:
        public = type(exc)
    assert public == expected


@needs_native
def test_text_that_is_not_utf8_encodable_fails_like_python() -> None:
    slot = Slot("\ud800", 0)
    with pytest.raises(UnicodeEncodeError):
        slot.pack_python()
    with pytest.raises(UnicodeEncodeError):
        native.pack(slot)


uuids = st.uuids().map(str)
request_ids = st.one_of(
    uuids,
    uuids.map(str.upper),
    st.text(max_size=40),
    st.text(alphabet="0123456789abcdefg-", min_size=36, max_size=36),
    st.integers(0, 10**36 - 1).map(lambda n: f"{n:036d}"),
    st.integers(0, 10**32 - 1).map(lambda n: "-".join(_uuid_parts(f"{n:032d}"))),
)


def _uuid_parts(digits: str) -> list[str]:
    return [digits[:8], digits[8:12], digits[12:16], digits[16:20], digits[20:]]


@needs_native
@given(request_ids)
@settings(max_examples=1000, deadline=None)
def test_request_keys_are_the_python_ones(request_id: str) -> None:
    key = native.request_key(request_id)
    assert key == keys.request_key_python(request_id)
    assert type(key) is type(keys.request_key_python(request_id))


@needs_native
@pytest.mark.parametrize(
    "request_id",
    [
        "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        "0190A1B2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",  # upper case: not canonical
        "01901112-3334-7555-8999-000000000000",  # no letter: not str.islower()
        "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5g",  # a letter past f
        "0190a1b2c-3d4-7e5f-8a9b-0c1d2e3f4a5b",  # a dash out of place
        "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5é",  # not ASCII
        "",
        "order-17",
    ],
)
def test_hand_picked_request_keys_are_the_python_ones(request_id: str) -> None:
    assert native.request_key(request_id) == keys.request_key_python(request_id)


@needs_native
def test_request_keys_fail_like_python() -> None:
    with pytest.raises(UnicodeEncodeError):
        keys.request_key_python("\ud800")
    with pytest.raises(UnicodeEncodeError):
        native.request_key("\ud800")
    with pytest.raises(TypeError):
        native.request_key(b"bytes")


optional_blob = st.none() | blob
event_args = st.tuples(
    blob,  # start
    blob,  # request id
    slots,
    optional_blob,  # candidate
    st.integers(-(2**63), 2**63 - 1),  # now_ms
    st.booleans(),  # with_inputs
    st.none() | blob,  # reason (None: left out)
)


@needs_native_events
@given(event_args)
@settings(max_examples=400, deadline=None)
def test_join_events_are_the_python_ones(args: tuple[Any, ...]) -> None:
    *given_args, reason = args
    if reason is not None:
        given_args.append(reason)
    assert native.join_event(*given_args) == slot_events.join_event_python(*given_args)


@needs_native_events
def test_join_events_decode_as_the_codec_writes_them() -> None:
    from streams.records import JoinEvent, JoinKind, Prediction, Role

    live = Prediction("r1", "m", "v1", Role.LIVE, 5, 1.5, None, 2.0, None, {"c": "DE"})
    cand = Prediction("r1", "m", "v2", Role.SHADOW, 6, 2.5, None, 3.0, "boom", {"c": "DE"})
    segments = avro_bytes.encode_string_map({"c": "DE"})
    head = avro_bytes.text("r1") + avro_bytes.encode_text("m")
    slot = _slot("m", 0, segments, None, {}, None, b"\x02" + bytes(8), [], [])
    slot.live = CODEC.encode(live)[5 + len(head) : -len(segments)]
    stored = CODEC.encode(cand)[5 + len(head) : -len(segments)]
    start = CODEC.header_of(JoinEvent) + b"\x00" + avro_bytes.encode_text("e")
    value = native.join_event(start, avro_bytes.text("r1"), slot, stored, 7, False)
    assert CODEC.decode_as(JoinEvent, value) == JoinEvent(
        JoinKind.PAIRED, "e", "r1", 7, live, cand, {"c": "DE"}, 0.0
    )


@needs_native_events
@pytest.mark.parametrize(
    "change",
    [
        lambda s: setattr(s, "live", bytearray(b"x")),
        lambda s: setattr(s, "segments", memoryview(b"\x00")),
        lambda s: setattr(s, "label", b""),  # written as no label, as Python does
        lambda s: setattr(s, "inputs", bytearray(b"in")),
    ],
)
def test_join_events_of_unusual_values_are_the_python_ones(change: Any) -> None:
    slot = _slot("m", 5, b"\x00", b"live", {"v2": b"c"}, b"in", b"\x02x", [], [])
    change(slot)
    for args in [
        (b"s", b"\x02r", slot, b"c", 2**70, True),  # now_ms past 64 bits
        (b"s", b"\x02r", slot, bytearray(b"c"), 9, True),
        (b"s", b"\x02r", slot, None, 9, 1, b"\x02\x02x"),
    ]:
        assert native.join_event(*args) == slot_events.join_event_python(*args)
