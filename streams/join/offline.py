"""Run the join and the statistics offline over recorded traffic, in event time.

The streaming join's own stage 1 (:class:`~streams.join.slots.SlotPairing`, on the
records' Avro bytes, through the same API) and stage 2 (:class:`Judge`); the clock is the
records' own timestamps, so a replay of the same file always gives the same result.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from streams.codec import Codec
from streams.join.experiments import ExperimentsFile
from streams.join.judge import Judge
from streams.join.keys import StoreKey, request_id_of, request_key
from streams.join.slot_state import Slot
from streams.join.slots import JoinOutcome, SlotPairing
from streams.records import GroundTruth, JoinEvent, ModelInput, Prediction

__all__ = ["OfflineJoin"]


class OfflineJoin:
    """Stage 1 state in a dict, stage 2 in-process, expiry driven by record timestamps.

    Examples
    --------
    >>> from streams.records import Role
    >>> exps = ExperimentsFile.parse('''
    ... [[experiments]]
    ... name = "e"
    ... model = "m"
    ... live_version = "v1"
    ... candidate = "v2"
    ... ''')
    >>> join = OfflineJoin(exps)
    >>> join.feed([Prediction("r1", "m", "v1", Role.LIVE, 1_000, 2.0)])
    >>> join.finish()
    >>> join.judge.counts["e"]["expired_no_shadow"]
    1
    """

    def __init__(self, experiments: ExperimentsFile, codec: Codec | None = None) -> None:
        self.codec = codec or Codec()
        self.pairing = SlotPairing.for_codec(experiments, self.codec)
        self.judge = Judge(experiments)
        self.pending: dict[StoreKey, bytes] = {}
        """Packed state by request key, as the streaming join's store holds it."""
        self.events: list[JoinEvent] = []
        self.outcomes: Counter[JoinOutcome] = Counter()
        """Records fed, by what became of them."""
        self._expire_every_ms = int(experiments.join.expire_every_s * 1000)
        self._next_expiry_ms: int | None = None
        self.now_ms = 0

    def feed(self, records: Iterable[Prediction | GroundTruth | ModelInput]) -> None:
        pairing = self.pairing
        for record in records:
            self.now_ms = max(self.now_ms, record.timestamp_ms)
            if self._next_expiry_ms is None:
                self._next_expiry_ms = self.now_ms + self._expire_every_ms
            elif self.now_ms >= self._next_expiry_ms:
                self.expire(self.now_ms)
                self._next_expiry_ms = self.now_ms + self._expire_every_ms
            key = request_key(record.request_id)
            packed = self.pending.get(key)
            slot = None if packed is None else Slot.unpack(packed)
            applied: Slot | JoinOutcome
            if isinstance(record, GroundTruth):
                applied = pairing.add_label(slot, record, self.now_ms)
            elif isinstance(record, ModelInput):
                raw = self.codec.encode(record)
                applied = pairing.add_input(slot, record, raw, self.now_ms)
            else:
                raw = self.codec.encode(record)
                applied = pairing.add_prediction(slot, record, raw, self.now_ms)
            self.outcomes[JoinOutcome.ACCEPTED if isinstance(applied, Slot) else applied] += 1
            self._apply(key, applied)

    def expire(self, now_ms: int) -> None:
        for key, packed in list(self.pending.items()):
            self._apply(key, self.pairing.expire(request_id_of(key), Slot.unpack(packed), now_ms))

    def finish(self) -> None:
        """The end of the recording: everything still pending expires now."""
        self.expire(self.now_ms + self.pairing.label_ttl_ms)

    def _apply(self, key: StoreKey, kept: Slot | JoinOutcome | None) -> None:
        if kept is None:
            self.pending.pop(key, None)
        elif isinstance(kept, Slot):
            self.pending[key] = kept.pack()
        for emitted in self.pairing.take_events():
            event = self.codec.decode_as(JoinEvent, emitted.value)
            self.events.append(event)
            self.judge.apply(event)
