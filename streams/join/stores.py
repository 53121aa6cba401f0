"""Opening join stage 1's per-partition stores (:mod:`streams.join.store`) as the
``store`` URL says: ``memory://`` or ``rocksdb://`` (:mod:`streams.join.rocks_store`,
imported only when asked for, so rocksdict stays optional)."""

from __future__ import annotations

import hashlib
import re
import socket
from pathlib import Path

from streams.join.store import MemoryStore, PartitionStore, StoreOptions

__all__ = ["Stores", "store_directory"]


class Stores:
    """Opens the store of each input partition stage 1 owns, as the URL says.

    ``rocksdb://`` databases go under ``directory/partition-<n>`` and share one block
    cache and one memtable budget (:class:`StoreOptions`).
    """

    def __init__(self, url: str, directory: Path) -> None:
        self.options = StoreOptions.parse(url)
        self.directory = directory
        self.persistent = self.options.kind == "rocksdb"
        self._memory = None
        if self.persistent:
            from streams.join.rocks_store import RocksMemory

            self._memory = RocksMemory(self.options)

    def group_member(self, group: str) -> dict[str, str]:
        """Consumer settings of the stage's group member: with a persistent store, a
        static member (``group.instance.id``, from the host and the store directory), so
        a restarted worker gets its partitions, and their stores, back at once instead
        of after the dead member's session timeout. Such a member never leaves on close:
        a graceful stop leaves first (:func:`~streams.kafka.assignment.leave_group`)."""
        if not self.persistent:
            return {}
        where = f"{socket.gethostname()}:{self.directory.resolve()}"
        return {"group.instance.id": f"{group}-{hashlib.sha256(where.encode()).hexdigest()[:16]}"}

    def open(self, partition: int) -> PartitionStore:
        if self._memory is None:
            return MemoryStore()
        from streams.join.rocks_store import RocksStore

        return RocksStore(self.directory / f"partition-{partition}", self._memory)


def store_directory(data_dir: Path, group: str) -> Path:
    """Where the stores of consumer group ``group`` live under ``--data-dir``."""
    return data_dir / "pairs" / re.sub(r"[^A-Za-z0-9._-]", "_", group)
