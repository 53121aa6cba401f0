"""Join stage 1's expiry: when a pending request is due, and whether it may be declared.

Each request is filed under its first deadline when it is created (:class:`ExpiryClock`),
in its partition's store; an expiry pass looks only at the requests due. Expiry runs
only when every owned input partition is read to its end (:func:`caught_up`), so a
request whose other half is still unread (a backlog, a restart) is never declared
missing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping

from streams.join.keys import StoreKey, request_id_of
from streams.join.metrics import JoinMetrics
from streams.join.slot_state import Slot
from streams.join.slots import JoinOutcome, SlotPairing
from streams.join.store import Due, PartitionStore
from streams.kafka.clients import ConsumerLike

__all__ = ["ExpiryClock", "caught_up"]


class ExpiryClock:
    """When stage 1's pending requests need a look, and the look itself.

    The deadlines live in each partition's store (:meth:`~streams.join.store.PartitionStore.due`).

    Examples
    --------
    >>> clock = ExpiryClock(pair_ttl_ms=1_000, label_ttl_ms=5_000)
    >>> clock.first_due(first_seen_ms=0)
    1000
    """

    def __init__(self, pair_ttl_ms: int, label_ttl_ms: int) -> None:
        self.pair_ttl_ms = pair_ttl_ms
        self.label_ttl_ms = label_ttl_ms
        self._first_ttl = min(pair_ttl_ms, label_ttl_ms)

    def first_due(self, first_seen_ms: int) -> int:
        """The first deadline of a request first seen at ``first_seen_ms``."""
        return first_seen_ms + self._first_ttl

    def next_deadline(self, slot: Slot, now_ms: int) -> int:
        """The next time a request still held needs a look: its pair TTL, else its label
        TTL (a request past its label TTL is never still held)."""
        pair_due = slot.first_seen_ms + self.pair_ttl_ms
        label_due = slot.first_seen_ms + self.label_ttl_ms
        return pair_due if now_ms < pair_due < label_due else label_due

    @staticmethod
    def take_due(
        parts: Mapping[int, PartitionStore], now_ms: int, limit: int
    ) -> dict[int, list[Due]]:
        """Up to ``limit`` deadlines due per partition (partitions with none left out)."""
        return {p: due for p, store in parts.items() if (due := store.due(now_ms, limit))}

    def settle(
        self,
        pairing: SlotPairing,
        parts: Mapping[int, PartitionStore],
        due: Mapping[int, list[Due]],
        now_ms: int,
        touched: dict[StoreKey, Slot | None],
        dirty: dict[StoreKey, int],
    ) -> dict[int, list[tuple[StoreKey, int]]]:
        """Expire the requests ``due`` (:meth:`take_due`): the new states go to
        ``touched`` (by key) and ``dirty`` (key -> partition), the join events are queued
        in ``pairing``; returns the deadlines to file again, by partition."""
        filed: dict[int, list[tuple[StoreKey, int]]] = {}
        for partition, entries in due.items():
            load = _loader(parts[partition], touched)
            refile = filed[partition] = []
            keys = (key for key, _entry in entries)
            for key, _request_id, slot in self.expire_due(pairing, load, keys, now_ms, refile):
                touched[key] = slot
                dirty[key] = partition
        return filed

    def expire_due(
        self,
        pairing: SlotPairing,
        load: Callable[[StoreKey], Slot | None],
        due: Iterable[StoreKey],
        now_ms: int,
        refile: list[tuple[StoreKey, int]],
    ) -> Iterator[tuple[StoreKey, str, Slot | None]]:
        """Settle the ``due`` requests still held (``load`` gives a state): yields
        ``(key, request id, new state or None: delete it)`` for each request that
        changed, with its join events queued in ``pairing``; a request still held
        afterwards goes to ``refile`` under its next deadline."""
        for key in due:
            slot = load(key)
            if slot is None:
                continue  # done with already
            request_id = request_id_of(key)
            kept = pairing.expire(request_id, slot, now_ms)
            if isinstance(kept, JoinOutcome):  # nothing due yet: unchanged
                refile.append((key, self.next_deadline(slot, now_ms)))
                continue
            if kept is not None:
                refile.append((key, self.next_deadline(kept, now_ms)))
            yield key, request_id, kept


def _loader(
    store: PartitionStore, touched: dict[StoreKey, Slot | None]
) -> Callable[[StoreKey], Slot | None]:
    """A request's state: as this pass left it, else from ``store``."""

    def load(key: StoreKey) -> Slot | None:
        if key in touched:
            return touched[key]
        packed = store.get(key)
        return None if packed is None else Slot.unpack(packed)

    return load


def caught_up(
    consumer: ConsumerLike,
    at_end: Collection[tuple[str, int]],
    sources: Iterable[str],
    metrics: JoinMetrics,
) -> bool:
    """Whether every assigned input partition was read to its end (librdkafka reported
    reaching it: ``at_end``), and set the lag gauges from the last fetched high
    watermarks."""
    assigned = consumer.assignment()
    if not assigned:
        return False
    lags: Counter[str] = Counter()
    for tp in consumer.position(assigned):
        _low, high = consumer.get_watermark_offsets(tp, cached=True) or (0, 0)
        if tp.offset >= 0 and high >= 0:
            lags[tp.topic] += max(high - tp.offset, 0)
    for topic in sources:
        metrics.lag.labels(topic).set(lags.get(topic, 0))
    return all((tp.topic, tp.partition) in at_end for tp in assigned)
