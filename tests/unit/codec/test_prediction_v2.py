"""Prediction version 2 (the cost fields): registered under new ids, BACKWARD compatible,
and the bytes version 1 wrote still read, by every decoder and by the join's restore."""

from __future__ import annotations

from dataclasses import replace

import pytest

from streams.codec import Codec, SchemaCatalogue
from streams.codec.compat import check_catalogue
from streams.join.slot_state import Slot
from streams.records import JoinEvent, JoinEventBatch, JoinKind, JoinSlot, Prediction, Role

# Written by the version 1 codec (main before the cost fields), byte for byte.
V1_SHADOW = (
    b"\x00\x00\x00\x00\x02\x04r1\nchurn\x04v2\x02\x80\xa0\xab\xfe\xf9b\x02\x00\x00\x00\x00\x00"
    b"\x00\xe8?\x02\x04\x06yes\x00\x00\x00\x00\x00\x00\xe8?\x04no\x00\x00\x00\x00\x00\x00\xd0?"
    b"\x00\x00\x00\x00\x00\x00\x00\x0c@\x00\x02\x0ecountry\x04fr\x00"
)
V1_LIVE = (
    b"\x00\x00\x00\x00\x02\x04r1\nchurn\x04v1\x00\x80\xa0\xab\xfe\xf9b\x04\x06yes\x00\x00\x00"
    b"\x00\x00\x00\x00\xf4?\x00\x02\x0ecountry\x04fr\x00"
)
V1_EVENT_BODY = b"\x00\x10churn/v2\x04r1\x80\xa0\xab\xfe\xf9b\x02\x0ecountry\x04fr\x00\x02" + (
    V1_LIVE[5:] + b"\x02" + V1_SHADOW[5:] + b"\x00\x00\x00"
)
V1_EVENT = b"\x00\x00\x00\x00\x04" + V1_EVENT_BODY
V1_BATCH = b"\x00\x00\x00\x00\x0c\x02" + V1_EVENT_BODY + b"\x00"

SEGMENTS = {"country": "fr"}
SHADOW = Prediction(
    "r1", "churn", "v2", Role.SHADOW, 1_700_000_000_000, 0.75, {"yes": 0.75, "no": 0.25}, 3.5,
    None, SEGMENTS,
)  # fmt: skip
LIVE = Prediction(
    "r1", "churn", "v1", Role.LIVE, 1_700_000_000_000, "yes", None, 1.25, None, SEGMENTS
)
EVENT = JoinEvent(
    JoinKind.PAIRED, "churn/v2", "r1", 1_700_000_000_000, LIVE, SHADOW, SEGMENTS, None
)
CODECS = [Codec(), Codec(fast=False)]


def test_the_catalogue_holds_version_2_under_new_ids_and_it_is_backward_compatible() -> None:
    catalogue = SchemaCatalogue.default()
    versions = catalogue.versions("dev.shadoweval.Prediction")
    assert [(e.id, e.version) for e in versions] == [(2, 1), (13, 2)]
    for name in ("JoinEvent", "JoinEventBatch", "JoinSlot"):
        assert catalogue.latest(f"dev.shadoweval.{name}").version == 2
    report = check_catalogue(catalogue)
    assert any(label.startswith("dev.shadoweval.Prediction v2") for label in report)
    assert report and all(problems == [] for problems in report.values()), report


@pytest.mark.parametrize("codec", CODECS, ids=["fast", "fastavro"])
def test_version_1_bytes_read_with_the_cost_fields_null(codec: Codec) -> None:
    assert codec.decode(V1_SHADOW) == SHADOW
    assert codec.decode_as(Prediction, V1_LIVE) == LIVE
    assert codec.decode(V1_EVENT) == EVENT
    assert codec.decode(V1_BATCH) == JoinEventBatch((EVENT,))
    assert SHADOW.cpu_ms is None and SHADOW.worker is None


@pytest.mark.parametrize("codec", CODECS, ids=["fast", "fastavro"])
def test_version_2_carries_the_cost_fields(codec: Codec) -> None:
    costly = replace(
        SHADOW, cpu_ms=4.25, worker="host:42", worker_rss_mb=310.5, worker_peak_mb=402.0,
        load_s=1.5, model_mb=88.0,
    )  # fmt: skip
    data = codec.encode(costly)
    assert data[:5] == b"\x00\x00\x00\x00\x0d"  # Prediction version 2 is id 13
    assert all(c.decode(data) == costly for c in CODECS)
    event = replace(EVENT, candidate=costly, live=replace(LIVE, cpu_ms=1.0))
    assert all(c.decode(codec.encode(event)) == event for c in CODECS)


def test_a_version_1_join_state_is_upgraded_on_restore() -> None:
    """A JoinSlot version 1 (stored predictions of version 1) reads as version 2: its
    join events then carry the version 1 predictions with null cost fields."""
    codec = Codec()
    assert codec.header_of(JoinSlot, version=1) == b"\x00\x00\x00\x00\x0b"
    assert codec.header_of(JoinSlot) == b"\x00\x00\x00\x00\x10"
    old = Slot("churn", 5)
    old.live = V1_LIVE[5 + 3 + 6 :]  # a stored prediction: the body after request_id, model
    old.live = old.live[: -len(b"\x02\x0ecountry\x04fr\x00")]  # ... and before segments
    upgraded = Slot.unpack(Slot.upgrade_v1(old.pack()) or b"")
    assert upgraded.live == old.live + bytes(6)
    reread = codec.decode_as(
        Prediction, codec.header_of(Prediction) + b"\x04r1\nchurn" + upgraded.live + b"\x00"
    )
    assert reread == replace(LIVE, segments={})
