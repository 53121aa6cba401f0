"""``rocksdb://``: one input partition's join state in a RocksDB database on local disk.

The database outlives the process and the partition's revocation, so its next owner on
this machine replays only the changelog after the offset it recorded. Keys, by their
first byte (one database, so one atomic write covers all three):

- ``s`` + changelog key: a request's packed state;
- ``d`` + due second (8 bytes, big-endian) + changelog key: the deadline index, ordered
  by time, so an expiry pass reads only what is due and no RAM grows per request;
- ``c``: the number of states; ``m``: what :meth:`RocksStore.mark` recorded (JSON).

Memory is bounded by :class:`~streams.join.store.StoreOptions`: one LRU block cache
shared by every partition's database holds data blocks and the partitioned index and
bloom-filter blocks, and the memtables of them all are charged to that cache (a RocksDB
WriteBufferManager), so resident memory does not grow with pending requests.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from streams.join.keys import StoreKey, changelog_key, key_from_changelog
from streams.join.store import Due, Persisted
from streams.join.store_options import StoreOptions

__all__ = ["RocksMemory", "RocksStore"]

log = logging.getLogger(__name__)

FORMAT = 1
"""Bumped when the key layout changes (a store of another format is rebuilt)."""
LOCK_WAIT_S = 30.0
"""How long to wait for a database another process still holds (a rebalance hand-off
between two workers sharing a data dir)."""
_STATES, _STATES_END, _DUE, _COUNT, _META = b"s", b"t", b"d", b"c", b"m"
MIB = 1024 * 1024


def _rocksdict() -> Any:
    try:
        import rocksdict
    except ImportError as exc:  # an optional extra
        raise RuntimeError(
            "store rocksdb:// needs rocksdict: pip install 'shadow-eval[rocksdb]'"
        ) from exc
    return rocksdict


class RocksMemory:
    """The memory every partition's database of one stage shares: block cache and
    memtable budget."""

    def __init__(self, options: StoreOptions) -> None:
        rocksdict = _rocksdict()
        self.cache = rocksdict.Cache(options.cache_mb * MIB)
        self.write_buffers = rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(
            options.write_buffer_mb * MIB, False, self.cache
        )
        self.write_buffer_bytes = options.write_buffer_mb * MIB

    def options(self) -> Any:
        rocksdict = _rocksdict()
        table = rocksdict.BlockBasedOptions()
        table.set_block_cache(self.cache)
        table.set_bloom_filter(10, False)
        # Index and bloom filters are cut into block-sized partitions that live in the
        # cache like data blocks, with only their small top level pinned. A whole-file
        # filter (megabytes per file at millions of keys) evicted from a small cache had
        # to be read back for every lookup of a new request: 10x slower at 5 million
        # pending. Outside the cache they would grow with pending requests.
        table.set_index_type(rocksdict.BlockBasedIndexType.two_level_index_search())
        table.set_partition_filters(True)
        table.set_cache_index_and_filter_blocks(True)
        table.set_pin_top_level_index_and_filter(True)
        # Point lookups find their key in a data block by a hash, not a binary search.
        table.set_data_block_index_type(rocksdict.DataBlockIndexType.binary_and_hash())
        options = rocksdict.Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_block_based_table_factory(table)
        options.set_write_buffer_manager(self.write_buffers)
        options.set_write_buffer_size(min(16 * MIB, max(MIB, self.write_buffer_bytes // 4)))
        options.set_max_write_buffer_number(2)
        options.set_max_open_files(256)
        return options


class RocksStore:
    """One partition's states and deadlines in the database at ``path``.

    Examples
    --------
    >>> import tempfile
    >>> memory = RocksMemory(StoreOptions("rocksdb"))
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     store = RocksStore(Path(tmp) / "partition-0", memory)
    ...     store.write({b"r1": b"state"}, filed=[(b"r1", 5_000)])
    ...     store.close()
    ...     again = RocksStore(Path(tmp) / "partition-0", memory)  # kept on disk
    ...     print(again.get(b"r1"), len(again), [key for key, _ in again.due(6_000, 10)])
    ...     again.close()
    b'state' 1 [b'r1']
    """

    persistent = True

    def __init__(self, path: Path, memory: RocksMemory) -> None:
        self.path = path
        self._memory = memory
        self._rocksdict = _rocksdict()
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._db = self._open()
        count = self._db.get(_COUNT)
        self._count = 0 if count is None else int.from_bytes(count, "big")
        self._due_floor = 0
        """No deadline is filed before this second: where :meth:`due` starts reading, past
        the deletions of the entries settled before (RocksDB still has to step over
        deleted keys until a compaction drops them)."""

    def _open(self) -> Any:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                return self._rocksdict.Rdict(str(self.path), self._memory.options())
            except Exception as exc:  # rocksdict raises a bare Exception
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise RuntimeError(f"join state {self.path}: cannot open ({exc})") from exc
                time.sleep(0.5)  # another worker is still handing the partition over

    def get(self, key: StoreKey) -> bytes | None:
        value: bytes | None = self._db.get(_STATES + changelog_key(key))
        return value

    def items(self) -> Iterator[tuple[StoreKey, bytes]]:
        for raw, value in self._scan(_STATES, _STATES_END):
            yield key_from_changelog(raw[1:]), value

    def _scan(self, start: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Streams ``[start, end)`` from the database (never a list of it)."""
        read = self._rocksdict.ReadOptions()
        read.set_iterate_upper_bound(end)
        cursor = self._db.iter(read)
        cursor.seek(start)
        while cursor.valid():
            yield cursor.key(), cursor.value()
            cursor.next()

    def __len__(self) -> int:
        return self._count

    def write(
        self,
        changes: Mapping[StoreKey, bytes | None],
        filed: Iterable[tuple[StoreKey, int]] = (),
        settled: Iterable[Due] = (),
    ) -> None:
        batch = self._rocksdict.WriteBatch(raw_mode=True)
        count = self._count
        if changes:
            raws = [_STATES + changelog_key(key) for key in changes]
            for raw, value, before in zip(raws, changes.values(), self._db[raws], strict=True):
                if value is not None:
                    batch.put(raw, value)
                    count += before is None
                elif before is not None:
                    batch.delete(raw)
                    count -= 1
        for _key, entry in settled:  # before filed: an entry may be filed again
            batch.delete(entry)
        floor = self._due_floor
        for key, due_ms in filed:
            second = -(-due_ms // 1000)
            floor = min(floor, second)
            batch.put(_DUE + second.to_bytes(8, "big") + changelog_key(key), b"")
        batch.put(_COUNT, count.to_bytes(8, "big"))
        self._db.write(batch)
        self._count = count
        self._due_floor = floor

    def due(self, now_ms: int, limit: int) -> list[Due]:
        now_s = now_ms // 1000
        start = _DUE + self._due_floor.to_bytes(8, "big")
        taken: list[Due] = []
        for raw, _ in self._scan(start, _DUE + (now_s + 1).to_bytes(8, "big")):
            taken.append((key_from_changelog(raw[9:]), raw))
            if len(taken) >= limit:
                break
        # Nothing is filed before the first entry found (or, with none, up to now).
        self._due_floor = int.from_bytes(taken[0][1][1:9], "big") if taken else now_s + 1
        return taken

    def persisted(self) -> Persisted | None:
        raw = self._db.get(_META)
        if raw is None:
            return None
        try:
            meta = json.loads(raw)
            if meta.get("format") != FORMAT:
                return None
            return Persisted(
                int(meta["offset"]),
                str(meta["topic_id"]),
                bytes.fromhex(meta["header"]),
                int(meta["written_ms"]),
                str(meta.get("ttls", "")),
            )
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("join: %s: unreadable offset record (%s); rebuilding", self.path, exc)
            return None

    def mark(self, persisted: Persisted) -> None:
        meta = {
            "format": FORMAT,
            "offset": persisted.offset,
            "topic_id": persisted.topic_id,
            "header": persisted.header.hex(),
            "written_ms": persisted.written_ms,
            "ttls": persisted.ttls,
        }
        self._db.put(_META, json.dumps(meta).encode())

    def wipe(self) -> None:
        self._db.close()
        self._rocksdict.Rdict.destroy(str(self.path), self._memory.options())
        self._db = self._open()
        self._count = 0
        self._due_floor = 0

    def disk_bytes(self) -> int:
        """The database's files on disk."""
        return sum(f.stat().st_size for f in self.path.iterdir() if f.is_file())

    def close(self) -> None:
        self._db.close()
