"""Every record type survives encode -> decode unchanged (property-based)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.codec import Codec
from streams.records import Record
from tests.unit.codec.strategies import ALL_RECORDS

CODEC = Codec()


@pytest.mark.parametrize("name", sorted(ALL_RECORDS))
def test_every_record_type_round_trips(name: str) -> None:
    @settings(max_examples=150, deadline=None)
    @given(ALL_RECORDS[name])
    def check(record: Record) -> None:
        data = CODEC.encode(record)
        assert data[0] == 0
        assert CODEC.decode(data) == record

    check()


@given(st.sampled_from(sorted(ALL_RECORDS)).flatmap(lambda n: ALL_RECORDS[n]))
@settings(max_examples=100, deadline=None)
def test_decode_as_rejects_other_record_types(record: Record) -> None:
    from streams.codec import CodecError
    from streams.records import GroundTruth

    data = CODEC.encode(record)
    if isinstance(record, GroundTruth):
        assert CODEC.decode_as(GroundTruth, data) == record
    else:
        with pytest.raises(CodecError, match="expected GroundTruth"):
            CODEC.decode_as(GroundTruth, data, topic="t", partition=0, offset=1)
