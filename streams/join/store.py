"""Where join stage 1 keeps its packed request states: one store per owned input partition.

``memory://`` (the default) keeps them in a dict and rebuilds it from the compacted
``<prefix>.join.state`` changelog on every assignment. ``rocksdb://``
(:mod:`streams.join.rocks_store`) keeps them on local disk under ``--data-dir``, one
RocksDB per input partition, kept across restarts and revocations together with the
changelog offset it reflects, so an assignment replays only the changelog after that
offset (:mod:`streams.join.pairs_restore`).

Each store also holds its deadline index: when each pending request next needs an
expiry look. Stage 1 applies a batch's changes with :meth:`PartitionStore.write` only
*after* the Kafka transaction that wrote them to the changelog committed, so a store
never holds an aborted change, and whatever offset it last recorded stays true: every
changelog record before it is reflected in the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from streams.join.deadlines import Deadlines
from streams.join.keys import StoreKey
from streams.join.store_options import StoreOptions

__all__ = [
    "Due",
    "MemoryStore",
    "PartitionStore",
    "Persisted",
    "StoreOptions",
]

Due = tuple[StoreKey, bytes]
"""A deadline taken from a store's index: the request's key and the entry's own id
(given back to :meth:`PartitionStore.write` as ``settled`` once handled)."""


@dataclass(frozen=True, slots=True)
class Persisted:
    """What a persistent store last recorded beside its states."""

    offset: int
    """Every changelog record before this offset is reflected in the store."""
    topic_id: str
    """The Kafka id of the changelog topic (a topic created again has a new one)."""
    header: bytes
    """The states' wire header (magic byte and JoinSlot schema id) when written."""
    written_ms: int
    """When this was recorded (wall clock)."""
    ttls: str = ""
    """The pair and label TTLs its deadlines were filed under (``"<ms>/<ms>"``)."""


class PartitionStore(Protocol):
    """The packed states (bytes) of one input partition's pending requests, by key
    (:func:`~streams.join.keys.request_key`), and their deadline index."""

    persistent: bool
    """Whether it outlives the process (then :meth:`persisted` says how far it is)."""

    def get(self, key: StoreKey) -> bytes | None: ...

    def items(self) -> Iterator[tuple[StoreKey, bytes]]:
        """Every state, streamed from the store."""
        ...

    def __len__(self) -> int: ...

    def write(
        self,
        changes: Mapping[StoreKey, bytes | None],
        filed: Iterable[tuple[StoreKey, int]] = (),
        settled: Iterable[Due] = (),
    ) -> None:
        """Apply in one atomic write: ``changes`` (None deletes), the index entries
        ``settled`` removed, then the deadlines ``filed`` (``(key, due ms)``) added."""
        ...

    def due(self, now_ms: int, limit: int) -> list[Due]:
        """Up to ``limit`` index entries due at ``now_ms``, earliest first."""
        ...

    def persisted(self) -> Persisted | None: ...

    def mark(self, persisted: Persisted) -> None: ...

    def wipe(self) -> None:
        """Empty the store (states, deadlines and what it recorded)."""
        ...

    def close(self) -> None: ...


class MemoryStore:
    """A dict and an in-memory deadline index: the default, and the fastest; rebuilt
    from the changelog on every assignment.

    Examples
    --------
    >>> store = MemoryStore()
    >>> store.write({b"r1": b"state"}, filed=[(b"r1", 5_000)])
    >>> store.get(b"r1"), len(store), store.due(6_000, 10)
    (b'state', 1, [(b'r1', b'')])
    """

    persistent = False

    def __init__(self) -> None:
        self._data: dict[StoreKey, bytes] = {}
        self._deadlines: Deadlines[StoreKey] = Deadlines()
        self.get = self._data.get  # type: ignore[method-assign,assignment]

    def get(self, key: StoreKey) -> bytes | None:  # replaced per instance by dict.get
        return self._data.get(key)

    def items(self) -> Iterator[tuple[StoreKey, bytes]]:
        return iter(self._data.items())

    def __len__(self) -> int:
        return len(self._data)

    def write(
        self,
        changes: Mapping[StoreKey, bytes | None],
        filed: Iterable[tuple[StoreKey, int]] = (),
        settled: Iterable[Due] = (),
    ) -> None:
        data = self._data
        for key, value in changes.items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        add = self._deadlines.add
        for key, due_ms in filed:
            add(key, due_ms)
        # (settled entries left the index when due() took them)

    def due(self, now_ms: int, limit: int) -> list[Due]:
        return [(key, b"") for key in self._deadlines.take_due(now_ms, limit)]

    def persisted(self) -> Persisted | None:
        return None

    def mark(self, persisted: Persisted) -> None:
        pass  # nothing outlives the process

    def wipe(self) -> None:
        self._data.clear()
        self._deadlines.clear()

    def close(self) -> None:
        self.wipe()
