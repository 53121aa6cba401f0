"""UUIDv7 per RFC 9562: layout, time, order, uniqueness."""

from __future__ import annotations

import re
import time
import uuid

import pytest

from streams.hook.ids import uuid7, uuid7_time_ms

CANONICAL = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def test_format_version_and_variant() -> None:
    for _ in range(1000):
        rid = uuid7()
        assert CANONICAL.match(rid), rid
        parsed = uuid.UUID(rid)
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == rid


def test_timestamp_is_now_in_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    rid = uuid7()
    after = time.time_ns() // 1_000_000
    assert before <= uuid7_time_ms(rid) <= after + 1


def test_ids_sort_in_creation_order_and_are_unique() -> None:
    ids = [uuid7() for _ in range(20_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_random_bits_differ() -> None:
    tails = {uuid7()[-12:] for _ in range(1000)}
    assert len(tails) == 1000


def test_time_of_a_non_v7_uuid_is_an_error() -> None:
    with pytest.raises(ValueError, match="not a UUIDv7"):
        uuid7_time_ms(str(uuid.uuid4()))
