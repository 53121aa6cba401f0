"""Our murmur2 is Kafka's: the Java client's own test vectors, and aiokafka's implementation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.partitioning import murmur2, partition_for_key, to_positive
from streams.topics import partition_of

# org.apache.kafka.common.utils.UtilsTest.testMurmur2 (clients/src/test/java), Java ints.
KAFKA_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("key", "expected"), KAFKA_VECTORS.items())
def test_murmur2_gives_the_java_clients_values(key: bytes, expected: int) -> None:
    assert murmur2(key) == expected


def test_to_positive_keeps_the_low_31_bits_like_java() -> None:
    # Utils.toPositive(number) = number & 0x7fffffff: not abs(), so MIN_VALUE maps to 0.
    assert to_positive(-(2**31)) == 0
    assert to_positive(-1) == 2**31 - 1
    assert to_positive(-973932308) == 1173551340
    assert to_positive(479470107) == 479470107


def test_every_tail_length_and_the_empty_key() -> None:
    aiokafka = pytest.importorskip("aiokafka.partitioner")
    for key in [b"", b"a", b"ab", b"abc", b"abcd", b"abcde", bytes(range(256))]:
        assert murmur2(key) & 0xFFFFFFFF == aiokafka.murmur2(key), key


@settings(max_examples=500, deadline=None)
@given(key=st.binary(max_size=64), partitions=st.integers(1, 1000))
def test_same_hash_and_partition_as_aiokafka(key: bytes, partitions: int) -> None:
    aiokafka = pytest.importorskip("aiokafka.partitioner")
    assert murmur2(key) & 0xFFFFFFFF == aiokafka.murmur2(key)
    chosen = aiokafka.DefaultPartitioner()(key, list(range(partitions)), list(range(partitions)))
    assert partition_for_key(key, partitions) == chosen == partition_of(key, partitions)


def test_hash_is_a_java_int() -> None:
    values = [murmur2(str(i).encode()) for i in range(2000)]
    assert all(-(2**31) <= v < 2**31 for v in values)
    assert min(values) < 0 < max(values)


def test_docstring_examples() -> None:
    import doctest

    import streams.partitioning

    result = doctest.testmod(streams.partitioning)
    assert result.attempted >= 3
    assert result.failed == 0
