"""The ``[join] store`` URL: which state store join stage 1 uses, and its memory bounds."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

__all__ = ["StoreOptions"]


@dataclass(frozen=True, slots=True)
class StoreOptions:
    """The ``[join] store`` URL: ``memory://`` or ``rocksdb://``, the latter with its
    memory bounds as query parameters (``rocksdb://?cache_mb=256&write_buffer_mb=64``).

    Examples
    --------
    >>> StoreOptions.parse("rocksdb://?cache_mb=32")
    StoreOptions(kind='rocksdb', cache_mb=32, write_buffer_mb=32)
    """

    kind: str
    cache_mb: int = 64
    """RocksDB block cache shared by every partition's database (data, index and
    bloom-filter blocks), in MiB."""
    write_buffer_mb: int = 32
    """RocksDB memtables of every partition together, in MiB (charged to the cache)."""

    @classmethod
    def parse(cls, url: str) -> StoreOptions:
        parts = urlsplit(url)
        if parts.scheme not in ("memory", "rocksdb") or parts.netloc or parts.path:
            raise ValueError(f"store {url!r}: use memory:// or rocksdb://")
        sizes: dict[str, int] = {}
        for name, text in parse_qsl(parts.query, keep_blank_values=True):
            if parts.scheme != "rocksdb" or name not in ("cache_mb", "write_buffer_mb"):
                raise ValueError(f"store {url!r}: unknown parameter {name!r}")
            if not text.isdigit() or int(text) < 1:
                raise ValueError(f"store {url!r}: {name} must be a whole number of MiB >= 1")
            sizes[name] = int(text)
        return cls(parts.scheme, **sizes)
