"""The one dead-letter path: what a letter keeps, and how it is sent."""

from __future__ import annotations

import hashlib

from streams.codec import Codec
from streams.kafka.deadletter import MAX_REASON_CHARS, dead_letter, fitted, send_dead_letter
from streams.kafka.limits import PREFIX_BYTES
from streams.kafka.producer import ProducerWrapper
from streams.records import DeadLetter
from tests.unit.kafka.fakes import FakeBroker, FakeClients, FakeMessage


def test_a_letter_keeps_the_record_and_where_it_came_from() -> None:
    message = FakeMessage("shadow.inputs", 4, 99, b"req-1", b"\x00junk")
    letter = dead_letter(message, component="worker", error_type="undecodable", reason="bad")
    assert (letter.component, letter.source_topic, letter.source_partition) == (
        "worker",
        "shadow.inputs",
        4,
    )
    assert (letter.source_offset, letter.key, letter.value) == (99, b"req-1", b"\x00junk")
    assert letter.reason == "bad" and letter.timestamp_ms > 0


def test_a_long_reason_is_cut_to_the_limit_with_an_ellipsis() -> None:
    message = FakeMessage("t", 0, 0, None, b"x")
    letter = dead_letter(message, component="join", error_type="e", reason="r" * 10_000)
    assert len(letter.reason) == MAX_REASON_CHARS and letter.reason.endswith("...")
    short = dead_letter(message, component="join", error_type="e", reason="r" * MAX_REASON_CHARS)
    assert short.reason == "r" * MAX_REASON_CHARS


def test_a_missing_partition_or_offset_is_minus_one_never_zero() -> None:
    class Unplaced(FakeMessage):
        def partition(self) -> int | None:  # type: ignore[override]
            return None

        def offset(self) -> int | None:  # type: ignore[override]
            return None

    letter = dead_letter(Unplaced("t", 0, 0), component="join", error_type="e", reason="r")
    assert (letter.source_partition, letter.source_offset) == (-1, -1)


def test_a_letter_goes_keyed_by_the_original_key_and_decodes_back() -> None:
    broker = FakeBroker()
    broker.create("dlq")
    producer = ProducerWrapper({}, clients=FakeClients(broker))
    codec = Codec()
    letter = dead_letter(
        FakeMessage("in", 1, 5, b"req-7", b"junk"), component="join", error_type="e", reason="r"
    )
    send_dead_letter(producer, "dlq", letter, codec)
    producer.flush(1)
    [(key, value)] = broker.records("dlq")
    assert key == b"req-7"
    assert codec.decode(value) == letter


def test_a_letter_too_large_for_the_broker_goes_without_the_value() -> None:
    broker = FakeBroker(max_value_bytes=500)
    broker.create("dlq")
    producer = ProducerWrapper({}, clients=FakeClients(broker))
    codec = Codec()
    letter = dead_letter(
        FakeMessage("in", 1, 5, b"k", bytes(2000)), component="worker", error_type="e", reason="r"
    )
    sent = send_dead_letter(producer, "dlq", letter, codec)
    producer.flush(1)
    [(_, value)] = broker.records("dlq")
    stored = codec.decode(value)
    assert isinstance(stored, DeadLetter) and stored == sent
    assert stored.value is None and "value of 2000 bytes not kept" in stored.reason


def test_a_letter_over_the_producers_limit_keeps_a_prefix_its_size_and_digest() -> None:
    broker = FakeBroker()
    broker.create("dlq")
    producer = ProducerWrapper({"message.max.bytes": 100_000}, clients=FakeClients(broker))
    assert producer.max_bytes == 100_000
    codec = Codec()
    value = bytes(range(256)) * 1000
    letter = dead_letter(
        FakeMessage("in", 1, 5, b"k", value), component="join", error_type="too_large", reason="r"
    )
    sent = send_dead_letter(producer, "dlq", letter, codec)
    producer.flush(1)
    [(_, stored_bytes)] = broker.records("dlq")
    stored = codec.decode(stored_bytes)
    assert isinstance(stored, DeadLetter) and stored == sent
    assert stored.value == value[:PREFIX_BYTES]
    assert f"value of {len(value)} bytes" in stored.reason
    assert hashlib.sha256(value).hexdigest() in stored.reason
    assert len(stored_bytes) < 4 * PREFIX_BYTES


def test_a_letter_that_fits_keeps_its_whole_value() -> None:
    letter = DeadLetter("join", "t", 0, 1, "undecodable", "r", 0, b"k", bytes(50_000))
    assert fitted(letter, 100_000) is letter
    assert fitted(letter, 50_000).value == bytes(PREFIX_BYTES)
