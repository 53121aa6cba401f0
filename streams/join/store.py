"""Where join stage 1 keeps its packed request states: ``memory://`` or ``rocksdb://``.

Both hold only the partitions this worker owns; the changelog topic is the durable copy
(a new owner restores from it), so a store starts empty and is cleared on revocation.
RocksDB keeps the states on local disk instead of the Python heap: for millions of
requests waiting days for their labels.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from streams.join.keys import StoreKey, changelog_key, key_from_changelog

__all__ = ["MemoryStore", "RocksStore", "StateStore", "open_store"]


class StateStore(Protocol):
    """Packed states (bytes) by request key (:func:`~streams.join.keys.request_key`)."""

    def get(self, key: StoreKey) -> bytes | None: ...

    def put(self, key: StoreKey, value: bytes) -> None: ...

    def delete(self, key: StoreKey) -> None: ...

    def items(self) -> Iterator[tuple[StoreKey, bytes]]: ...

    def clear(self) -> None: ...

    def __len__(self) -> int: ...

    def close(self) -> None: ...


class MemoryStore:
    """A dict: the default, and the fastest.

    Examples
    --------
    >>> store = MemoryStore()
    >>> store.put(b"r1", b"state")
    >>> store.get(b"r1"), len(store)
    (b'state', 1)
    """

    def __init__(self) -> None:
        self._data: dict[StoreKey, bytes] = {}
        # The dict's own methods: no Python call per request.
        self.get = self._data.get  # type: ignore[method-assign,assignment]
        self.put = self._data.__setitem__  # type: ignore[method-assign,assignment]

    def get(self, key: StoreKey) -> bytes | None:  # replaced per instance by dict.get
        return self._data.get(key)

    def put(self, key: StoreKey, value: bytes) -> None:  # replaced by dict.__setitem__
        self._data[key] = value

    def delete(self, key: StoreKey) -> None:
        self._data.pop(key, None)

    def items(self) -> Iterator[tuple[StoreKey, bytes]]:
        return iter(list(self._data.items()))

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)

    def close(self) -> None:
        self._data.clear()


class RocksStore:
    """A RocksDB database (rocksdict) in a fresh directory under ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        try:
            from rocksdict import Options, Rdict
        except ImportError as exc:  # an optional extra
            raise RuntimeError(
                "store rocksdb:// needs rocksdict: pip install 'shadow-eval[rocksdb]'"
            ) from exc
        data_dir.mkdir(parents=True, exist_ok=True)
        self._path = Path(tempfile.mkdtemp(prefix="join-state-", dir=data_dir))
        self._options = Options(raw_mode=True)
        self._rdict = Rdict
        self._db = Rdict(str(self._path), self._options)
        self._count = 0

    def get(self, key: StoreKey) -> bytes | None:
        value: bytes | None = self._db.get(changelog_key(key))
        return value

    def put(self, key: StoreKey, value: bytes) -> None:
        raw = changelog_key(key)
        if self._db.get(raw) is None:
            self._count += 1
        self._db[raw] = value

    def delete(self, key: StoreKey) -> None:
        raw = changelog_key(key)
        if self._db.get(raw) is not None:
            self._count -= 1
            del self._db[raw]

    def items(self) -> Iterator[tuple[StoreKey, bytes]]:
        for raw, value in list(self._db.items()):
            yield key_from_changelog(raw), value  # type: ignore[arg-type]

    def clear(self) -> None:
        self._db.close()
        self._rdict.destroy(str(self._path), self._options)
        self._db = self._rdict(str(self._path), self._options)
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def close(self) -> None:
        self._db.close()
        shutil.rmtree(self._path, ignore_errors=True)


def open_store(url: str, data_dir: Path) -> StateStore:
    """The store a ``[join] store`` URL names."""
    if url.startswith("memory://"):
        return MemoryStore()
    if url.startswith("rocksdb://"):
        return RocksStore(data_dir)
    raise ValueError(f"store {url!r}: use memory:// or rocksdb://")
