"""The hand-written ModelInput / Prediction codecs are byte-for-byte fastavro.

Every check runs the default :class:`Codec` (fast paths on) against ``Codec(fast=False)``,
which encodes and decodes everything with fastavro: same bytes out, same records back,
same errors on bad input.
"""

from __future__ import annotations

import contextlib
import copy
import math
import re
from types import MappingProxyType
from typing import Any, cast

import pytest
from fastavro import parse_schema
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.codec import Codec, CodecError, EncodeError, SchemaCatalogue
from streams.codec.catalogue import SchemaEntry
from streams.codec.fast import fast_codec_for
from streams.records import ModelInput, Prediction, Record, Role
from tests.unit.codec.strategies import finite, model_inputs, names, predictions, text

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
)

hot_records = st.one_of(model_inputs, predictions)
odd_records = st.one_of(odd_model_inputs, odd_predictions)


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


def test_every_truncation_fails_like_fastavro() -> None:
    for record in (
        ModelInput("r", "m", 1, {"a": 1.0}, {"c": "x"}, {"s": "t"}, {"e": [1]}),
        Prediction("r", "m", "v", Role.SHADOW, 1, "yes", {"yes": 0.5}, 1.5, "boom", {"s": "t"}),
    ):
        data = FASTAVRO.encode(record)
        for cut in range(len(data)):
            short = data[:cut]
            assert outcome(FAST.decode, short) == outcome(FASTAVRO.decode, short)


def test_the_fast_paths_are_on_for_the_shipped_schemas() -> None:
    catalogue = SchemaCatalogue.default()
    for name in ("dev.shadoweval.ModelInput", "dev.shadoweval.Prediction"):
        parsed = catalogue.latest(name).parsed
        assert fast_codec_for(name, HEADER, parsed, parsed) is not None
    assert fast_codec_for("dev.shadoweval.GroundTruth", HEADER, {}) is None


def test_a_schema_with_another_layout_turns_the_fast_path_off() -> None:
    entry = SchemaCatalogue.default().latest("dev.shadoweval.Prediction")
    changed = copy.deepcopy(entry.raw)
    changed["fields"].append({"name": "note", "type": "string", "default": ""})
    assert fast_codec_for(entry.name, HEADER, cast(dict[str, Any], parse_schema(changed))) is None
    reordered = copy.deepcopy(entry.raw)
    reordered["fields"].reverse()
    assert fast_codec_for(entry.name, HEADER, cast(dict[str, Any], parse_schema(reordered))) is None


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
    data = HEADER + b"\x02r\x02m" + bytes([fill] * (size - 1) + [last]) + b"\x00" * 6
    assert outcome(FAST.decode, data) == outcome(FASTAVRO.decode, data)


def test_bytearray_and_memoryview_input_still_decode() -> None:
    record = Prediction("r", "m", "v", Role.LIVE, 1, 2.5, None, 0.5, None, {"s": "t"})
    data = FAST.encode(record)
    # Typed as bytes, but replay and tests hand in buffers too: fastavro reads those.
    buffers: list[Any] = [bytearray(data), memoryview(data)]
    for buffer in buffers:
        assert FAST.decode(buffer) == FAST.decode_as(Prediction, buffer) == record
