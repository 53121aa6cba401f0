"""Join stage 1's expiry: when a pending request is due, and whether it may be declared.

Each request is filed under its first deadline when it is created (:class:`ExpiryClock`);
an expiry pass looks only at the requests due. Expiry runs only when every owned input
partition is read to its end (:func:`caught_up`), so a request whose other half is still
unread (a backlog, a restart) is never declared missing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator

from streams.join.deadlines import Deadlines
from streams.join.keys import StoreKey, request_id_of
from streams.join.metrics import JoinMetrics
from streams.join.slot_state import Slot
from streams.join.slots import JoinOutcome, SlotPairing
from streams.kafka.clients import ConsumerLike

__all__ = ["ExpiryClock", "caught_up"]


class ExpiryClock:
    """The pending requests of stage 1 by when they next need a look.

    Examples
    --------
    >>> clock = ExpiryClock(pair_ttl_ms=1_000, label_ttl_ms=5_000)
    >>> clock.file(b"k", first_seen_ms=0)
    >>> list(clock.due(999)), list(clock.due(1_000))
    ([], [b'k'])
    """

    def __init__(self, pair_ttl_ms: int, label_ttl_ms: int) -> None:
        self.pair_ttl_ms = pair_ttl_ms
        self.label_ttl_ms = label_ttl_ms
        self._first_ttl = min(pair_ttl_ms, label_ttl_ms)
        self._deadlines: Deadlines[StoreKey] = Deadlines()
        self.add = self._deadlines.add

    def file(self, key: StoreKey, first_seen_ms: int) -> None:
        """File a new request under its first deadline."""
        self._deadlines.add(key, first_seen_ms + self._first_ttl)

    def file_all(self, packed_states: Iterable[tuple[StoreKey, bytes]]) -> None:
        """File every restored request (``(key, packed slot)`` pairs)."""
        for key, packed in packed_states:
            self.file(key, Slot.first_seen(packed))

    def clear(self) -> None:
        self._deadlines.clear()

    def due(self, now_ms: int) -> Iterator[StoreKey]:
        return self._deadlines.pop_due(now_ms)

    def next_deadline(self, slot: Slot, now_ms: int) -> int:
        """The next time a request still held needs a look: its pair TTL, else its label
        TTL (a request past its label TTL is never still held)."""
        pair_due = slot.first_seen_ms + self.pair_ttl_ms
        label_due = slot.first_seen_ms + self.label_ttl_ms
        return pair_due if now_ms < pair_due < label_due else label_due

    def expire_due(
        self, pairing: SlotPairing, load: Callable[[StoreKey], Slot | None], now_ms: int
    ) -> Iterator[tuple[StoreKey, str, Slot | None]]:
        """Settle every due request still held (``load`` gives its state): yields
        ``(key, request id, new state or None: delete it)`` for each request that
        changed, with its join events queued in ``pairing``; a request still held
        afterwards is filed again under its next deadline."""
        for key in self.due(now_ms):
            slot = load(key)
            if slot is None:
                continue  # done with already
            request_id = request_id_of(key)
            kept = pairing.expire(request_id, slot, now_ms)
            if isinstance(kept, JoinOutcome):  # nothing due yet: unchanged
                self._deadlines.add(key, self.next_deadline(slot, now_ms))
                continue
            if kept is not None:
                self._deadlines.add(key, self.next_deadline(kept, now_ms))
            yield key, request_id, kept


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
