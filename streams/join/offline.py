"""Run the join and the statistics offline over recorded traffic, in event time.

The same :class:`Pairing` and :class:`Judge` as the streaming agent; the clock is the
records' own timestamps, so a replay of the same file always gives the same result.
"""

from __future__ import annotations

from collections.abc import Iterable

from streams.join.experiments import ExperimentsFile
from streams.join.judge import Judge
from streams.join.pairing import Pairing, Step
from streams.records import GroundTruth, JoinEvent, ModelInput, PendingRequest, Prediction

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

    def __init__(self, experiments: ExperimentsFile) -> None:
        self.pairing = Pairing(experiments)
        self.judge = Judge(experiments)
        self.pending: dict[str, PendingRequest] = {}
        self.events: list[JoinEvent] = []
        self._expire_every_ms = int(experiments.join.expire_every_s * 1000)
        self._next_expiry_ms: int | None = None
        self.now_ms = 0

    def feed(self, records: Iterable[Prediction | GroundTruth | ModelInput]) -> None:
        for record in records:
            self.now_ms = max(self.now_ms, record.timestamp_ms)
            if self._next_expiry_ms is None:
                self._next_expiry_ms = self.now_ms + self._expire_every_ms
            elif self.now_ms >= self._next_expiry_ms:
                self.expire(self.now_ms)
                self._next_expiry_ms = self.now_ms + self._expire_every_ms
            state = self.pending.get(record.request_id)
            if isinstance(record, GroundTruth):
                step = self.pairing.on_label(state, record, self.now_ms)
            elif isinstance(record, ModelInput):
                step = self.pairing.on_input(state, record, self.now_ms)
            else:
                step = self.pairing.on_prediction(state, record, self.now_ms)
            self._apply(record.request_id, step)

    def expire(self, now_ms: int) -> None:
        for request_id, state in list(self.pending.items()):
            self._apply(request_id, self.pairing.expire(request_id, state, now_ms))

    def finish(self) -> None:
        """The end of the recording: everything still pending expires now."""
        self.expire(self.now_ms + self.pairing.label_ttl_ms)

    def _apply(self, request_id: str, step: Step) -> None:
        if step.state is None:
            self.pending.pop(request_id, None)
        elif step.changed:
            self.pending[request_id] = step.state
        for event in step.events:
            self.events.append(event)
            self.judge.apply(event)
