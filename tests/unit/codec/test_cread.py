"""The C readers (``streams/codec/_cread.c``) give the Python readers' results, exactly.

Both take a whole message and return its record or ``None`` (fastavro then decides), so
each check feeds the same bytes to both: encodings of ordinary and odd records, every
truncation, and random corruptions. ``test_fast.py`` holds the decoders in use (the C
ones, when built) to fastavro as well.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.codec import Codec
from streams.codec.fastread import DECODERS, NATIVE_DECODERS, PYTHON_DECODERS, current_shape
from streams.codec.shapes import C_SHAPES
from streams.records import (
    GroundTruth,
    JoinEvent,
    JoinEventBatch,
    JoinKind,
    ModelInput,
    Prediction,
    Record,
    Role,
)
from tests.unit.codec.strategies import (
    ground_truths,
    join_event_batches,
    join_events,
    model_inputs,
    paired_events,
    predictions,
)
from tests.unit.codec.test_fast import (
    EVENT,
    INPUT,
    LIVE,
    SHADOW,
    odd_ground_truths,
    odd_join_events,
    odd_model_inputs,
    odd_predictions,
    same_records,
)
from tests.unit.native import skip_unless_buildable

FASTAVRO = Codec(fast=False)
NAMES = {
    ModelInput: "dev.shadoweval.ModelInput",
    Prediction: "dev.shadoweval.Prediction",
    GroundTruth: "dev.shadoweval.GroundTruth",
    JoinEvent: "dev.shadoweval.JoinEvent",
    JoinEventBatch: "dev.shadoweval.JoinEventBatch",
}

native = pytest.mark.skipif(not NATIVE_DECODERS, reason="the C readers are not built")


def results(name: str, data: bytes) -> tuple[Any, Any]:
    """(C reader's result, Python reader's result); an exception counts as a result."""
    out = []
    for decoders in (NATIVE_DECODERS, PYTHON_DECODERS):
        try:
            out.append(decoders[name](data))
        except Exception as exc:  # compared, not hidden: both must raise alike
            out.append((type(exc), str(exc)))
    return out[0], out[1]


def assert_same(name: str, data: bytes) -> None:
    c, python = results(name, data)
    assert same_records(c, python), (data, c, python)


def encodable(record: Record) -> bytes | None:
    try:
        return FASTAVRO.encode(record)
    except Exception:
        return None  # odd values fastavro refuses: nothing to read


def test_the_c_readers_are_in_use_wherever_a_compiler_is_and_the_layout_is_theirs() -> None:
    """The C readers are hand-written for one layout of each record: a schema that moved
    on turns them off (the generated Python readers follow it) rather than drift."""
    skip_unless_buildable()
    if any(current_shape(name) != shape for name, shape in C_SHAPES.items()):
        assert NATIVE_DECODERS == {}
        pytest.skip("the schemas moved past the C readers' layout: the Python ones run")
    assert set(NATIVE_DECODERS) == set(NAMES.values()), "rebuild: make install"
    assert all(DECODERS[name] is NATIVE_DECODERS[name] for name in NATIVE_DECODERS)


valid = st.one_of(
    model_inputs,
    odd_model_inputs,
    predictions,
    ground_truths,
    join_events,
    paired_events,
    join_event_batches,
    odd_predictions,
    odd_ground_truths,
)


@native
@given(st.one_of(valid, odd_join_events))
@settings(max_examples=600, deadline=None)
def test_valid_records_read_the_same(record: Record) -> None:
    data = encodable(record)
    if data is not None:
        name = NAMES[type(record)]
        assert_same(name, data)
        assert same_records(NATIVE_DECODERS[name](data), FASTAVRO.decode(data))


@native
@given(st.one_of(valid, odd_join_events), st.data())
@settings(max_examples=600, deadline=None)
def test_corrupt_and_cut_bytes_read_the_same(record: Record, data: st.DataObject) -> None:
    encoded = encodable(record)
    if encoded is None:
        return
    corrupt = bytearray(encoded)
    for _ in range(data.draw(st.integers(1, 4))):
        corrupt[data.draw(st.integers(5, len(corrupt) - 1))] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        del corrupt[data.draw(st.integers(0, len(corrupt))) :]
    if data.draw(st.booleans()):
        corrupt += data.draw(st.binary(min_size=1, max_size=3))
    assert_same(NAMES[type(record)], bytes(corrupt))


@native
@pytest.mark.parametrize(
    "record",
    [
        INPUT,
        replace(INPUT, numeric={}, categorical={}, segments={}, extra=None),
        LIVE,
        SHADOW,
        GroundTruth("r", "m", 1717000900000, "yes"),
        GroundTruth("r", "m", -1, 0.25),
        EVENT,
        JoinEvent(JoinKind.LABELLED, "e", "r", 5, None, LIVE, {}, 1.0),
        JoinEvent(JoinKind.PAIRED, "e", "r", 5, LIVE, SHADOW, LIVE.segments, None),
        JoinEventBatch(()),
        JoinEventBatch((EVENT, JoinEvent(JoinKind.PAIRED, "e", "r", 5, LIVE, SHADOW, {}, None))),
    ],
)
def test_every_truncation_and_every_byte_value_read_the_same(record: Record) -> None:
    data = FASTAVRO.encode(record)
    name = NAMES[type(record)]
    for cut in range(len(data) + 1):
        assert_same(name, data[:cut])
    for position in range(5, len(data)):
        for value in (0x00, 0x01, 0x02, 0x04, 0x7F, 0x80, 0xFF):
            changed = data[:position] + bytes([value]) + data[position + 1 :]
            assert_same(name, changed)


@native
@pytest.mark.parametrize(
    "body",
    [
        b"\x02r\x02m\x02v\x00" + b"\xff" * 9 + b"\x01" + b"\x00" * 18,  # ts of 10 bytes
        b"\x02r\x02m\x02v\x00" + b"\xff" * 9 + b"\x02" + b"\x00" * 18,  # past 64 bits
        b"\x02r\x02m\x02v\x00" + b"\xff" * 10 + b"\x00" + b"\x00" * 18,  # 11 bytes
        b"\x02r\x02m\x02v\x00\x00\x00\x02\x03k" + b"\x00" * 8,  # negative map count
        b"\x02r\x02m\x02v\x00\x00\x00\x02\x02\x02k" + b"\x00" * 8 + b"\x02\x02j",  # 2 blocks
        b"\x02r\x02m\x02v\x00\x00\x00\x00" + b"\x00" * 8 + b"\x00" * 7 + b"\x00",  # all empty
        b"\x02r\x02m\x02v\x00\x00\x00\x00" + b"\x00" * 15 + b"\x02\x02k\x02v\x00",
        b"\x02r\x02m\x02v\x04\x00\x00\x00" + b"\x00" * 16,  # role out of range
        # The cost fields (version 2): set, a union index out of range, a bad worker name.
        b"\x02r\x02m\x02v\x00\x00\x00\x00"
        + b"\x00" * 9
        + b"\x02"
        + b"\x00" * 8
        + b"\x02\x02w"
        + b"\x02"
        + b"\x00" * 8
        + b"\x00\x00\x00\x00",
        b"\x02r\x02m\x02v\x00\x00\x00\x00" + b"\x00" * 9 + b"\x04" + b"\x00" * 6,
        b"\x02r\x02m\x02v\x00\x00\x00\x00" + b"\x00" * 10 + b"\x02\x02\xff" + b"\x00" * 5,
        b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00",  # a huge length
    ],
)
def test_hand_made_prediction_bodies_read_the_same(body: bytes) -> None:
    assert_same("dev.shadoweval.Prediction", b"\x00\x00\x00\x00\x02" + body)


@native
def test_the_records_are_fresh_objects_of_the_classes() -> None:
    live = Prediction("r", "m", "v1", Role.LIVE, 1, 0.5, {"a": 0.5}, 2.0, None, {"k": "v"})
    event = JoinEvent(JoinKind.PAIRED, "e", "r", 1, live, live, {"k": "v"}, None)
    read = NATIVE_DECODERS["dev.shadoweval.JoinEvent"](FASTAVRO.encode(event))
    assert type(read) is JoinEvent and read == event
    assert type(read.live) is Prediction and read.live.role is Role.LIVE
    assert read.kind is JoinKind.PAIRED
    # The nested copies of the event's segments are maps of their own.
    assert read.live.segments == read.segments and read.live.segments is not read.segments
    assert read.live is not read.candidate


@native
def test_a_buffer_that_is_not_bytes_is_refused_clearly() -> None:
    with pytest.raises(TypeError, match="bytes"):
        NATIVE_DECODERS["dev.shadoweval.Prediction"](bytearray(b"\x00" * 10))  # type: ignore[arg-type]


@native
@pytest.mark.parametrize(
    "body",
    [
        b"\x02r\x02m\x00\x02a\x10" + b"\x00" * 8 + b"\x00\x00\x00\x00",  # plain
        b"\x02r\x02m\x00\x02a\x0e" + b"\x00" * 7 + b"\x00\x00\x00\x00",  # 7 value bytes
        b"\x02r\x02m\x00\x02a\x12" + b"\x00" * 9 + b"\x00\x00\x00\x00",  # 9 value bytes
        b"\x02r\x02m\x00\x00\x00\x02c\x06x\x1fy\x00\x00",  # 2 values, 1 name
        b"\x02r\x02m\x00\x00\x00\x00\x02\xff\x00\x00",  # bad UTF-8 values, no names
        b"\x02r\x02m\x00\x02\xff\x00\x00\x00\x00\x00",  # bad UTF-8 names
        b"\x02r\x02m\x00\x00\x00\x00\x00\x00\x02\x04{]",  # bad JSON
        b"\x02r\x02m\x00\x00\x00\x00\x00\x00\x02\x041}",  # JSON with trailing data
        b"\x02r\x02m\x00\x00\x00\x00\x00\x00\x04",  # extra union out of range
    ],
)
def test_hand_made_model_input_bodies_read_the_same(body: bytes) -> None:
    assert_same("dev.shadoweval.ModelInput", b"\x00\x00\x00\x00\x01" + body)
