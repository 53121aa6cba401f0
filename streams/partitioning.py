"""Kafka's default key partitioning (the Java client's), without a Kafka client.

A keyed record goes to ``toPositive(murmur2(key)) % partitions``: Java's
``org.apache.kafka.common.utils.Utils.murmur2`` and ``Utils.toPositive``, as the default
partitioner (``BuiltInPartitioner.partitionForKey``) uses them. librdkafka's
``murmur2_random`` partitioner, which every shadow-eval producer sets, and aiokafka's
``DefaultPartitioner`` compute the same, so a request id lands on the same partition of
every co-partitioned topic whichever client wrote it.
"""

from __future__ import annotations

__all__ = ["murmur2", "partition_for_key", "to_positive"]

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's 32-bit MurmurHash2 of ``data``, as Java's ``int`` (signed).

    Examples
    --------
    >>> murmur2(b"21"), murmur2(b"foobar")
    (-973932308, -790332482)
    """
    length = len(data)
    h = (_SEED ^ length) & _MASK
    tail = length & ~3
    for i in range(0, tail, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    left = length - tail
    if left:
        if left == 3:
            h ^= data[tail + 2] << 16
        if left >= 2:
            h ^= data[tail + 1] << 8
        h ^= data[tail]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - 0x1_0000_0000 if h & 0x8000_0000 else h


def to_positive(number: int) -> int:
    """Java's ``Utils.toPositive``: the low 31 bits (not the absolute value).

    Examples
    --------
    >>> to_positive(-973932308)
    1173551340
    """
    return number & 0x7FFFFFFF


def partition_for_key(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a record keyed ``key``.

    Examples
    --------
    >>> partition_for_key(b"21", 6)
    0
    """
    return to_positive(murmur2(key)) % partitions
