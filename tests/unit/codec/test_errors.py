"""Corrupt, truncated and unknown-schema messages raise the one typed CodecError."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.codec import Codec, CodecError, EncodeError
from streams.records import GroundTruth, ModelInput, Prediction, Role
from tests.unit.codec.strategies import ALL_RECORDS

CODEC = Codec()
INPUT = ModelInput("r-1", "churn", 1, {"age": 41.0, "income": 5.5e4}, {"plan": "pro"}, {"c": "DE"})


def test_error_names_topic_partition_and_offset() -> None:
    with pytest.raises(CodecError) as caught:
        CODEC.decode(b"\x00\x00\x00\x00\x63abc", topic="shadow.inputs", partition=3, offset=17)
    error = caught.value
    assert (error.topic, error.partition, error.offset, error.schema_id) == (
        "shadow.inputs",
        3,
        17,
        99,
    )
    assert str(error) == "cannot decode shadow.inputs[3]@17: unknown schema id 99"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (None, "shorter than the 5-byte header"),
        (b"", "shorter than the 5-byte header"),
        (b"\x00\x00", "shorter than the 5-byte header"),
        (b'{"request_id": "r1"}', "not the magic byte"),
        (b"\x01\x00\x00\x00\x01abc", "not the magic byte"),
    ],
)
def test_garbage_is_rejected(data: bytes | None, reason: str) -> None:
    with pytest.raises(CodecError, match=reason):
        CODEC.decode(data, topic="t", partition=0, offset=0)


def test_every_truncation_of_a_record_is_rejected() -> None:
    data = CODEC.encode(INPUT)
    for cut in range(len(data)):
        with pytest.raises(CodecError):
            CODEC.decode(data[:cut], topic="t", partition=0, offset=cut)


def test_trailing_bytes_are_rejected() -> None:
    with pytest.raises(CodecError, match="bytes left after the record"):
        CODEC.decode(CODEC.encode(INPUT) + b"\x00")


@given(st.sampled_from(sorted(ALL_RECORDS)).flatmap(lambda n: ALL_RECORDS[n]), st.data())
@settings(max_examples=200, deadline=None)
def test_corrupted_bytes_raise_codec_error_or_decode_cleanly(
    record: object, data: st.DataObject
) -> None:
    encoded = bytearray(CODEC.encode(record))  # type: ignore[arg-type]
    position = data.draw(st.integers(5, len(encoded) - 1))
    encoded[position] = data.draw(st.integers(0, 255))
    with contextlib.suppress(CodecError):  # the only error a consumer ever has to handle
        CODEC.decode(bytes(encoded))


def test_unencodable_records_raise_encode_error_naming_the_field() -> None:
    with pytest.raises(EncodeError, match="numeric feature 'age' is not a number"):
        CODEC.encode(ModelInput("r", "m", 0, {"age": "forty"}))  # type: ignore[dict-item]
    with pytest.raises(EncodeError, match="U\\+001F"):
        CODEC.encode(ModelInput("r", "m", 0, {"a\x1fb": 1.0}))
    with pytest.raises(EncodeError, match="must not be empty"):
        CODEC.encode(ModelInput("r", "m", 0, categorical={"": "x"}))
    with pytest.raises(EncodeError, match="Prediction cannot be encoded"):
        CODEC.encode(Prediction("r", "m", "v", Role.LIVE, "not-a-time"))  # type: ignore[arg-type]
    with pytest.raises(EncodeError, match="not a shadow-eval record"):
        CODEC.encode({"request_id": "r"})  # type: ignore[arg-type]


def test_labels_keep_numbers_as_numbers_and_classes_as_text() -> None:
    assert CODEC.decode(CODEC.encode(GroundTruth("r", "m", 0, 3))) == GroundTruth("r", "m", 0, 3.0)
    assert CODEC.decode(CODEC.encode(GroundTruth("r", "m", 0, "cat"))).value == "cat"
