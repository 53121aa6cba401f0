"""The hand-written ModelInput / Prediction / GroundTruth / JoinEvent codecs are
byte-for-byte fastavro.

Every check runs the default :class:`Codec` (fast paths on) against ``Codec(fast=False)``,
which encodes and decodes everything with fastavro: same bytes out, same records back,
same errors on bad input.
"""

from __future__ import annotations

import contextlib
import copy
import math
import re
from dataclasses import replace
from types import MappingProxyType
from typing import Any, cast

import pytest
from fastavro import parse_schema
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.codec import Codec, CodecError, EncodeError, SchemaCatalogue
from streams.codec.catalogue import SchemaEntry
from streams.codec.fast import fast_codec_for, schema_shape
from streams.records import (
    ExpiryReason,
    GroundTruth,
    JoinEvent,
    JoinKind,
    ModelInput,
    Prediction,
    Record,
    Role,
)
from tests.unit.codec.strategies import (
    finite,
    ground_truths,
    join_event_batches,
    join_events,
    model_inputs,
    names,
    paired_events,
    predictions,
    segments,
    text,
    timestamps,
)

FAST = Codec()
FASTAVRO = Codec(fast=False)
HEADER = b"\x00\x00\x00\x00\x01"

# Values the ordinary strategies never make: long and non-ASCII text (multi-byte
# lengths), wide feature sets (multi-byte counts), timestamps at and past the long
# range, ints and bools where floats belong, non-dict mappings, special floats.
long_text = st.one_of(text, st.text(min_size=60, max_size=300), st.just("é" * 2100))
any_long = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([-(2**63) - 1, 2**63, 2**64, True]),
)
odd_float = st.one_of(
    finite,
    st.sampled_from([math.inf, -math.inf, math.nan, -0.0]),
    st.integers(-(2**70), 2**70),
    st.booleans(),
)
odd_mapping = st.one_of(
    st.dictionaries(names, long_text, max_size=3),
    st.dictionaries(names, long_text, max_size=2).map(MappingProxyType),
    st.just({"k": 1}),
    st.just({1: "v"}),
)

odd_model_inputs = st.builds(
    ModelInput,
    request_id=long_text,
    model=st.one_of(text, st.just(b"bytes")),
    timestamp_ms=any_long,
    numeric=st.one_of(
        st.dictionaries(names, odd_float, max_size=80),
        st.just({"a\x1fb": 1.0}),
        st.just({"": 1.0}),
        st.just({"x": "1.0"}),
    ),
    categorical=st.one_of(
        st.dictionaries(names, long_text, max_size=70),
        st.just({"c": "a\x1fb"}),
    ),
    segments=odd_mapping,
    extra=st.one_of(st.none(), st.just({"nan": math.nan}), st.just({"s": "\ud800"})),
)

odd_predictions = st.builds(
    Prediction,
    request_id=long_text,
    model=text,
    version=long_text,
    role=st.one_of(st.sampled_from(Role), st.just("LIVE")),
    timestamp_ms=any_long,
    value=st.one_of(st.none(), odd_float, long_text, st.just(Role.LIVE)),
    probabilities=st.one_of(
        st.none(),
        st.dictionaries(long_text, odd_float, max_size=70),
        st.just(MappingProxyType({"a": 0.5})),
    ),
    latency_ms=odd_float,
    error=st.one_of(st.none(), long_text, st.just(3)),
    segments=odd_mapping,
    cpu_ms=st.one_of(st.none(), odd_float, st.just(3)),
    worker=st.one_of(st.none(), long_text, st.just(3)),
    load_s=st.one_of(st.none(), odd_float),
)

odd_label = st.one_of(st.none(), odd_float, long_text, st.just(Role.LIVE))

odd_ground_truths = st.builds(
    GroundTruth,
    request_id=long_text,
    model=st.one_of(text, st.just(b"bytes")),
    timestamp_ms=any_long,
    value=odd_label,
)

# Odd values in the event's own fields, then (under ordinary ones) in what it nests.
odd_join_events = st.one_of(
    st.builds(
        JoinEvent,
        kind=st.one_of(st.sampled_from(JoinKind), st.just("PAIRED")),
        experiment=long_text,
        request_id=st.one_of(long_text, st.just(b"bytes")),
        timestamp_ms=any_long,
        live=st.none(),
        candidate=st.none(),
        segments=odd_mapping,
        label=st.one_of(st.none(), finite, text),
    ),
    st.builds(
        JoinEvent,
        kind=st.sampled_from(JoinKind),
        experiment=long_text,
        request_id=long_text,
        timestamp_ms=timestamps,
        live=st.one_of(st.none(), predictions, odd_predictions, st.just("live")),
        candidate=st.one_of(st.none(), predictions, odd_predictions),
        segments=segments,
        label=odd_label,
        reason=st.one_of(st.none(), long_text, st.sampled_from(ExpiryReason), st.just(3)),
        inputs=st.one_of(st.none(), model_inputs, odd_model_inputs, st.just("inputs")),
    ),
)

hot_records = st.one_of(
    model_inputs, predictions, ground_truths, join_events, paired_events, join_event_batches
)
odd_records = st.one_of(odd_model_inputs, odd_predictions, odd_ground_truths, odd_join_events)


def outcome(action: Any, argument: Any) -> tuple[str, Any]:
    """What a call gives, comparable across the two codecs: the value or the error."""
    try:
        return "ok", action(argument)
    except (EncodeError, CodecError) as exc:
        # fastavro's messages may name a buffer object by address; nothing else differs.
        return type(exc).__name__, re.sub(r" at 0x[0-9a-f]+", "", str(exc))


def same_records(a: Any, b: Any) -> bool:
    """Equal, counting NaN equal to NaN (a NaN probability is a legal double)."""
    return repr(a) == repr(b) and type(a) is type(b)


@given(hot_records)
@settings(max_examples=400, deadline=None)
def test_encode_is_byte_identical_to_fastavro(record: Record) -> None:
    assert FAST.encode(record) == FASTAVRO.encode(record)


@given(odd_records)
@settings(max_examples=400, deadline=None)
def test_unusual_values_encode_identically_or_fail_identically(record: Record) -> None:
    assert outcome(FAST.encode, record) == outcome(FASTAVRO.encode, record)


@given(st.one_of(hot_records, odd_records))
@settings(max_examples=400, deadline=None)
def test_decode_of_fastavro_bytes_matches_fastavro(record: Record) -> None:
    with contextlib.suppress(EncodeError):
        data = FASTAVRO.encode(record)
        assert same_records(FAST.decode(data), FASTAVRO.decode(data))
        assert same_records(FAST.decode_as(type(record), data), FASTAVRO.decode(data))


@given(hot_records, st.data())
@settings(max_examples=500, deadline=None)
def test_corrupt_bytes_decode_identically_or_fail_identically(
    record: Record, data: st.DataObject
) -> None:
    encoded = bytearray(FASTAVRO.encode(record))
    for _ in range(data.draw(st.integers(1, 3))):
        position = data.draw(st.integers(5, len(encoded) - 1))
        encoded[position] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        del encoded[data.draw(st.integers(5, len(encoded))) :]
    corrupt = bytes(encoded)
    fast, reference = outcome(FAST.decode, corrupt), outcome(FASTAVRO.decode, corrupt)
    assert fast[0] == reference[0]
    assert same_records(fast[1], reference[1])


@pytest.mark.parametrize(
    "body",
    [
        b"\x80\x00" + b"\x00" * 8,  # a non-minimal varint: legal, fastavro reads it
        b"\x01",  # negative string length
        b"\xff" * 12,  # varint longer than 64 bits
        b"\x02r\x02m" + b"\x00" * 5 + b"\x01\x08\x02k\x02v\x00\x00",  # negative map count
        b"\x02r\x02m" + b"\x00" * 5 + b"\x02\x02k\x02v\x02\x02k\x02w\x00\x00",  # 2 blocks
        b"\x02r\x02m" + b"\x00" * 5 + b"\x00\x04",  # union index out of range
        b"\x02r\x02m\x00\x02\xff" + b"\x00" * 5,  # bad UTF-8
        b"\x02r\x02m" + b"\x00" * 7 + b"\x00",  # trailing byte
    ],
)
def test_hand_made_model_input_bodies_decode_like_fastavro(body: bytes) -> None:
    data = HEADER + body
    fast, reference = outcome(FAST.decode, data), outcome(FASTAVRO.decode, data)
    assert fast == reference


SEGMENTS = {"country": "DE", "device": "mobile"}
INPUT = ModelInput("r", "m", 1717000000100, {"a": 1.0}, {"c": "x"}, SEGMENTS, {"e": [1]})
LIVE = Prediction(
    "r", "m", "v1", Role.LIVE, 1717000000123, "yes", {"yes": 0.5}, 1.5, None, SEGMENTS
)
SHADOW = Prediction("r", "m", "v2", Role.SHADOW, 1717000000150, 2.5, None, 3.0, "boom", {"s": "t"})
EVENT = JoinEvent(
    JoinKind.EXPIRED, "e", "r", 1717000900000, LIVE, SHADOW, SEGMENTS, "no", "no_label", INPUT
)


@pytest.mark.parametrize(
    "record",
    [
        INPUT,
        LIVE,
        SHADOW,
        GroundTruth("r", "m", 1717000900000, "yes"),
        GroundTruth("r", "m", -1, 0.25),
        EVENT,
        JoinEvent(JoinKind.LABELLED, "e", "r", 5, None, LIVE, {}, 1.0),
    ],
)
def test_every_truncation_fails_like_fastavro(record: Record) -> None:
    data = FASTAVRO.encode(record)
    for cut in range(len(data)):
        short = data[:cut]
        assert outcome(FAST.decode, short) == outcome(FASTAVRO.decode, short)
    assert FAST.decode(data) == record


@pytest.mark.parametrize(
    "record",
    [
        GroundTruth("r", "m", 1, 3),  # whole numbers go as doubles
        GroundTruth("r", "m", 1, True),
        GroundTruth("r", "m", 1, 2**1100),
        GroundTruth("r", "m", 1, "\ud800"),
        GroundTruth("r", "m", 2**63, "y"),
        replace(EVENT, label=3),
        replace(EVENT, label=False),
        replace(EVENT, label=2**1100),
        replace(EVENT, reason=ExpiryReason.NO_LABEL),
        replace(EVENT, live=replace(LIVE, error="\ud800")),
        replace(EVENT, inputs=replace(INPUT, numeric={"a": "1"})),
        replace(EVENT, candidate=INPUT),
    ],
)
def test_hand_picked_values_encode_like_fastavro(record: Record) -> None:
    assert outcome(FAST.encode, record) == outcome(FASTAVRO.encode, record)


def test_nested_records_get_their_own_segments() -> None:
    # The readers copy a segments map seen earlier in the message; fastavro makes one
    # dict per map, and so must they.
    event = FAST.decode_as(JoinEvent, FASTAVRO.encode(EVENT))
    assert event == EVENT
    assert event.live is not None and event.inputs is not None
    maps = [event.segments, event.live.segments, event.inputs.segments]
    assert all(m == SEGMENTS for m in maps)
    assert len({id(m) for m in maps}) == len(maps)


def test_the_fast_paths_are_on_for_the_shipped_schemas() -> None:
    catalogue = SchemaCatalogue.default()
    for name in (
        "dev.shadoweval.ModelInput",
        "dev.shadoweval.Prediction",
        "dev.shadoweval.GroundTruth",
        "dev.shadoweval.JoinEvent",
    ):
        entry = catalogue.latest(name)
        assert fast_codec_for(name, HEADER, entry.parsed, entry.parsed) is not None
        assert fast_codec_for(name, HEADER, entry.expanded) is not None
    assert fast_codec_for("dev.shadoweval.GroundTruth", HEADER, {}) is None
    alert = catalogue.latest("dev.shadoweval.Alert").parsed
    assert fast_codec_for("dev.shadoweval.Alert", HEADER, alert) is None


@pytest.mark.parametrize("record", [EVENT, GroundTruth("r", "m", 1, "yes"), LIVE, INPUT])
def test_decode_and_decode_as_take_the_fast_path(
    record: Record, monkeypatch: pytest.MonkeyPatch
) -> None:
    codec = Codec()
    data = codec.encode(record)
    assert codec.decode(data) == record  # the first read of a schema id goes via fastavro

    def no_fastavro(*args: Any) -> Any:
        raise AssertionError("fastavro read a record the fast path handles")

    monkeypatch.setattr("streams.codec.wire.schemaless_reader", no_fastavro)
    assert codec.decode(data) == record
    assert codec.decode_as(type(record), data) == record


def test_a_schema_with_another_layout_turns_the_fast_path_off() -> None:
    entry = SchemaCatalogue.default().latest("dev.shadoweval.Prediction")
    changed = copy.deepcopy(entry.raw)
    changed["fields"].append({"name": "note", "type": "string", "default": ""})
    assert fast_codec_for(entry.name, HEADER, cast(dict[str, Any], parse_schema(changed))) is None
    reordered = copy.deepcopy(entry.raw)
    reordered["fields"].reverse()
    assert fast_codec_for(entry.name, HEADER, cast(dict[str, Any], parse_schema(reordered))) is None


def _join_event_parsed_with(prediction: dict[str, Any]) -> dict[str, Any]:
    """The JoinEvent schema parsed against the given Prediction, as the catalogue does."""
    catalogue = SchemaCatalogue.default()
    named: dict[str, Any] = {}
    parse_schema(catalogue.latest("dev.shadoweval.ModelInput").raw, named_schemas=named)
    parse_schema(prediction, named_schemas=named)
    raw = catalogue.latest("dev.shadoweval.JoinEvent").raw
    return cast(dict[str, Any], parse_schema(raw, named_schemas=named))


def test_a_changed_nested_record_turns_the_join_event_fast_path_off() -> None:
    name = "dev.shadoweval.JoinEvent"
    prediction = SchemaCatalogue.default().latest("dev.shadoweval.Prediction").raw
    assert fast_codec_for(name, HEADER, _join_event_parsed_with(prediction)) is not None
    changed = copy.deepcopy(prediction)
    changed["fields"][7]["type"] = "float"  # latency_ms
    assert fast_codec_for(name, HEADER, _join_event_parsed_with(changed)) is None
    # A reference to a named type the schema does not define is never a fast layout.
    unresolved = dict(SchemaCatalogue.default().latest(name).parsed)
    del unresolved["__named_schemas"]
    assert fast_codec_for(name, HEADER, unresolved) is None


def test_schema_shape_of_a_recursive_type_ends() -> None:
    node = {
        "type": "record",
        "name": "Node",
        "namespace": "t",
        "fields": [{"name": "next", "type": ["null", "t.Node"]}],
    }
    shape = schema_shape(parse_schema(node))
    assert shape == ("record", "t.Node", (("next", ("union", "null", ("ref", "t.Node"))),))


class _RegistryLike:
    """Ids as a Schema Registry serves them: a fresh parse of the expanded schema."""

    def __init__(self, catalogue: SchemaCatalogue) -> None:
        self._catalogue = catalogue

    def id_for(self, entry: SchemaEntry) -> int:
        return 100 + entry.id

    def writer_schema(self, schema_id: int) -> tuple[str, dict[str, Any]] | None:
        entry = self._catalogue.by_id(schema_id - 100)
        return (
            None
            if entry is None
            else (entry.name, cast(dict[str, Any], parse_schema(entry.expanded)))
        )


@given(hot_records)
@settings(max_examples=100, deadline=None)
def test_registry_schemas_with_the_same_layout_use_the_fast_path_exactly(record: Record) -> None:
    catalogue = SchemaCatalogue.default()
    fast = Codec(catalogue, _RegistryLike(catalogue))
    reference = Codec(catalogue, _RegistryLike(catalogue), fast=False)
    data = reference.encode(record)
    assert fast.encode(record) == data
    assert fast.decode(data) == reference.decode(data) == record


@given(hot_records)
@settings(max_examples=300, deadline=None)
def test_ordinary_records_never_leave_the_fast_path(record: Record) -> None:
    # Otherwise the equality tests above would pass by always falling back.
    entry = SchemaCatalogue.default().latest(f"dev.shadoweval.{type(record).__name__}")
    found = fast_codec_for(entry.name, HEADER, entry.parsed, entry.parsed)
    assert found is not None
    encode, decode = found
    data = encode(record)
    assert data is not None
    assert data == HEADER + FASTAVRO.encode(record)[5:]
    assert decode(data) == record


@pytest.mark.parametrize("size", range(1, 12))
@pytest.mark.parametrize("last", [0x00, 0x01, 0x7F, 0xFF])
@pytest.mark.parametrize("fill", [0x80, 0xFE, 0xFF])
def test_timestamp_varints_up_to_and_past_64_bits_read_like_fastavro(
    size: int, last: int, fill: int
) -> None:
    varint = bytes([fill] * (size - 1) + [last])
    data = HEADER + b"\x02r\x02m" + varint + b"\x00" * 6
    assert outcome(FAST.decode, data) == outcome(FASTAVRO.decode, data)
    for _ in range(2):  # the second read takes the cached-timestamp path
        data = b"\x00\x00\x00\x00\x03\x02r\x02m" + varint + b"\x02\x02y"  # GroundTruth
        assert outcome(FAST.decode, data) == outcome(FASTAVRO.decode, data)


@given(st.integers(-(2**63), 2**63 - 1), st.integers(0, 2**16))
@settings(max_examples=300, deadline=None)
def test_timestamps_near_a_cached_one_read_exactly(timestamp: int, step: int) -> None:
    # Neighbours share a cached varint tail and differ in the bytes decoded each time.
    for ts in (timestamp, timestamp ^ step, min(timestamp + step, 2**63 - 1), -timestamp - 1):
        for record in (GroundTruth("r", "m", ts, "y"), replace(LIVE, timestamp_ms=ts)):
            data = FASTAVRO.encode(record)
            assert FAST.decode(data) == FAST.decode(data) == record


@pytest.mark.parametrize(
    "body",
    [
        b"\x06" + b"\x00" * 6,  # enum index out of range
        b"\x01" + b"\x00" * 6,  # negative enum index
        b"\x00\x02e\x02r\x02\x00\x04" + b"\x00" * 4,  # live union index out of range
        b"\x00\x02e\x02r\x02\x00\x00\x03" + b"\x00" * 3,  # candidate union index negative
        b"\x00\x02e\x02r\x02\x00\x00\x00\x06\x00\x00",  # label union index out of range
        b"\x00\x02e\x02r\x02\x00\x00\x00\x00\x04\x00",  # reason union index out of range
        b"\x00\x02e\x02r\x02\x00\x00\x00\x00\x00\x04",  # inputs union index out of range
        b"\x00\x02e\x02r\x02\x00\x00\x00\x00\x00\x00\x00",  # trailing byte
        b"\x00\x02e\x02r\x02\x00\x00\x00\x04\x02\xff\x00\x00",  # bad UTF-8 label
        b"\x00\x02e\x02r\x02\x02\x02k\x02v\x02\x02k\x02w\x00\x00\x00\x00\x00\x00",  # 2 blocks
        b"\x00\x02e\x02r\x02\x01\x08\x02k\x02v\x00\x00\x00\x00\x00\x00",  # negative count
    ],
)
def test_hand_made_join_event_bodies_decode_like_fastavro(body: bytes) -> None:
    data = FAST.header_of(JoinEvent) + body
    fast, reference = outcome(FAST.decode, data), outcome(FASTAVRO.decode, data)
    assert fast == reference


def test_a_non_minimal_union_index_decodes_like_fastavro() -> None:
    body = FASTAVRO.encode(replace(EVENT, candidate=None, inputs=None))[5:]
    at = body.index(b"\x02\x02r\x02m\x04v1")  # the live branch index
    data = FAST.header_of(JoinEvent) + body[:at] + b"\x82\x00" + body[at + 1 :]
    assert FAST.decode(data) == FASTAVRO.decode(data) == replace(EVENT, candidate=None, inputs=None)


def test_bytearray_and_memoryview_input_still_decode() -> None:
    record = Prediction("r", "m", "v", Role.LIVE, 1, 2.5, None, 0.5, None, {"s": "t"})
    data = FAST.encode(record)
    # Typed as bytes, but replay and tests hand in buffers too: fastavro reads those.
    buffers: list[Any] = [bytearray(data), memoryview(data)]
    for buffer in buffers:
        assert FAST.decode(buffer) == FAST.decode_as(Prediction, buffer) == record
