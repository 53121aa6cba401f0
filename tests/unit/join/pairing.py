"""The test oracle of join stage 1: its rules as a readable state machine on records.

State per request is a :class:`PendingRequest`; every function takes the current state
(or None) and returns the new state (None: delete it) and the events to emit. The join
itself (streaming and ``shadow-eval replay``) runs these rules on raw bytes in
:mod:`streams.join.slots`; ``test_slots.py`` holds it to this module's events for random
arrival orders. It is a test, not a product: it lives in ``tests/``.

Rules:

* PAIRED is emitted once per experiment, when the live and that candidate's prediction
  are both there (and the request's inputs, when the experiment runs downstream
  functions on them; without inputs by ``pair_ttl`` the pair goes out without them);
  LABELLED once per experiment, when the label joins a pair.
* A record already present (at-least-once redelivery) is a duplicate and changes nothing.
* After ``pair_ttl`` an experiment still unpaired expires as ``no_shadow`` or ``no_live``;
  after ``label_ttl`` a pair still unlabelled expires as ``no_label``, a label nothing else
  arrived for as ``label_unknown``, and the state is deleted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from streams.join.experiments import Experiment, ExperimentsFile
from streams.join.slots import JoinOutcome as Outcome
from streams.records import (
    ExpiryReason,
    GroundTruth,
    JoinEvent,
    JoinKind,
    Label,
    ModelInput,
    Prediction,
    Role,
)

__all__ = ["Outcome", "Pairing", "PendingRequest", "Step", "StoredPrediction"]


@dataclass(frozen=True, slots=True)
class StoredPrediction:
    """A prediction inside :class:`PendingRequest`, without what the request already holds."""

    version: str
    timestamp_ms: int
    value: Label | None = None
    probabilities: Mapping[str, float] | None = None
    latency_ms: float = 0.0
    error: str | None = None


@dataclass(frozen=True, slots=True)
class PendingRequest:
    """Join stage 1 state of one request: what arrived, what was emitted."""

    model: str
    first_seen_ms: int
    segments: Mapping[str, str] = field(default_factory=dict)
    live: StoredPrediction | None = None
    candidates: tuple[StoredPrediction, ...] = ()
    inputs: ModelInput | None = None
    label: Label | None = None
    label_ms: int = 0
    closed: tuple[str, ...] = ()
    """Experiments whose pairing is settled (PAIRED emitted, or expired unpaired)."""
    labelled: tuple[str, ...] = ()
    """Experiments whose LABELLED event was emitted."""


@dataclass(frozen=True, slots=True)
class Step:
    """The result of feeding one record or one expiry check to :class:`Pairing`."""

    state: PendingRequest | None
    events: tuple[JoinEvent, ...] = ()
    outcome: Outcome = Outcome.ACCEPTED
    changed: bool = True
    """Whether ``state`` differs from the state passed in (so must be written back)."""


class Pairing:
    """Stage 1 over all experiments of an experiments file.

    Examples
    --------
    >>> from streams.join.experiments import ExperimentsFile
    >>> exps = ExperimentsFile.parse('''
    ... [[experiments]]
    ... name = "e"
    ... model = "m"
    ... live_version = "v1"
    ... candidate = "v2"
    ... ''')
    >>> pairing = Pairing(exps)
    >>> live = Prediction("r1", "m", "v1", Role.LIVE, 0, 1.0)
    >>> step = pairing.on_prediction(None, live, now_ms=0)
    >>> step = pairing.on_prediction(step.state, replace(live, version="v2", role=Role.SHADOW), 0)
    >>> [e.kind.value for e in step.events]
    ['PAIRED']
    """

    def __init__(self, experiments: ExperimentsFile) -> None:
        self.experiments = experiments
        self.pair_ttl_ms = int(experiments.join.pair_ttl_s * 1000)
        self.label_ttl_ms = int(experiments.join.label_ttl_s * 1000)
        self._by_model: dict[str, tuple[Experiment, ...]] = {
            model: experiments.for_model(model)
            for model in {e.model for e in experiments.experiments}
        }
        self.outcomes: Counter[str] = Counter()

    def on_prediction(self, state: PendingRequest | None, p: Prediction, now_ms: int) -> Step:
        experiments = self._by_model.get(p.model)
        if not experiments:
            return self._count(Step(state, outcome=Outcome.UNKNOWN_MODEL, changed=False))
        is_live = p.role is Role.LIVE
        if (is_live and p.version != experiments[0].live_version) or (
            not is_live and all(e.candidate != p.version for e in experiments)
        ):
            return self._count(Step(state, outcome=Outcome.UNKNOWN_VERSION, changed=False))
        if state is None:
            state = PendingRequest(p.model, now_ms, p.segments)
        elif self._already_has(state, p, experiments):
            return self._count(Step(state, outcome=Outcome.DUPLICATE, changed=False))
        stored = StoredPrediction(
            p.version, p.timestamp_ms, p.value, p.probabilities, p.latency_ms, p.error
        )
        if is_live:
            # The live prediction's segments are the request's; a candidate's are a copy.
            state = replace(state, live=stored, segments=p.segments or state.segments)
        else:
            state = replace(state, candidates=(*state.candidates, stored))
        return self._count(self._emit(state, p.request_id, experiments, now_ms))

    def on_input(self, state: PendingRequest | None, model_input: ModelInput, now_ms: int) -> Step:
        experiments = self._by_model.get(model_input.model)
        if not experiments:
            return self._count(Step(state, outcome=Outcome.UNKNOWN_MODEL, changed=False))
        if not any(e.needs_inputs for e in experiments):
            return self._count(Step(state, outcome=Outcome.NOT_NEEDED, changed=False))
        if state is None:
            state = PendingRequest(model_input.model, now_ms, model_input.segments)
        elif state.inputs is not None or self._complete(state, experiments):
            return self._count(Step(state, outcome=Outcome.DUPLICATE, changed=False))
        state = replace(state, inputs=model_input, segments=state.segments or model_input.segments)
        return self._count(self._emit(state, model_input.request_id, experiments, now_ms))

    def on_label(self, state: PendingRequest | None, label: GroundTruth, now_ms: int) -> Step:
        experiments = self._by_model.get(label.model)
        if not experiments:
            return self._count(Step(state, outcome=Outcome.UNKNOWN_MODEL, changed=False))
        if state is None:
            state = PendingRequest(label.model, now_ms)
        elif state.label is not None or self._complete(state, experiments):
            return self._count(Step(state, outcome=Outcome.DUPLICATE, changed=False))
        state = replace(state, label=label.value, label_ms=label.timestamp_ms)
        return self._count(self._emit(state, label.request_id, experiments, now_ms))

    def expire(self, request_id: str, state: PendingRequest, now_ms: int) -> Step:
        """Settle what timed out; returns ``state=None`` once the request is done with."""
        experiments = self._by_model.get(state.model, ())
        age = now_ms - state.first_seen_ms
        events: list[JoinEvent] = []
        closed = list(state.closed)
        if age >= self.pair_ttl_ms:
            # A pair still waiting for its inputs goes out without them.
            forced = self._emit(state, request_id, experiments, now_ms, require_inputs=False)
            if forced.events:
                state = forced.state if forced.state is not None else state
                events.extend(forced.events)
                closed = list(state.closed)
                if self._complete(state, experiments):
                    return Step(state, tuple(events))
            for experiment in experiments:
                if experiment.name in closed:
                    continue
                closed.append(experiment.name)
                candidate = self._candidate(state, experiment)
                if state.live is not None and candidate is None:
                    reason = ExpiryReason.NO_SHADOW
                elif state.live is None and candidate is not None:
                    reason = ExpiryReason.NO_LIVE
                else:
                    continue  # nothing of this experiment arrived; a lone label is settled below
                events.append(
                    self._event(JoinKind.EXPIRED, experiment, request_id, state, now_ms, reason)
                )
        if age < self.label_ttl_ms:
            if len(closed) == len(state.closed) and not events:
                return Step(state, changed=False)
            return Step(replace(state, closed=tuple(closed)), tuple(events))
        for experiment in experiments:
            if experiment.name in state.labelled:
                continue
            if (
                state.label is None
                and experiment.name in state.closed
                and self._paired(state, experiment)
            ):
                reason = ExpiryReason.NO_LABEL
            elif state.label is not None and state.live is None and not state.candidates:
                reason = ExpiryReason.LABEL_UNKNOWN
            else:
                continue
            events.append(
                self._event(JoinKind.EXPIRED, experiment, request_id, state, now_ms, reason)
            )
        return Step(None, tuple(events))

    # ------------------------------------------------------------------ helpers
    def _count(self, step: Step) -> Step:
        self.outcomes[step.outcome.value] += 1
        return step

    def _already_has(
        self, state: PendingRequest, p: Prediction, experiments: tuple[Experiment, ...]
    ) -> bool:
        if self._complete(state, experiments):
            return True  # predictions were dropped when the request completed
        if p.role is Role.LIVE:
            return state.live is not None
        return any(c.version == p.version for c in state.candidates)

    @staticmethod
    def _complete(state: PendingRequest, experiments: tuple[Experiment, ...]) -> bool:
        return all(e.name in state.labelled for e in experiments)

    @staticmethod
    def _candidate(state: PendingRequest, experiment: Experiment) -> StoredPrediction | None:
        for candidate in state.candidates:
            if candidate.version == experiment.candidate:
                return candidate
        return None

    def _paired(self, state: PendingRequest, experiment: Experiment) -> bool:
        return state.live is not None and self._candidate(state, experiment) is not None

    def _emit(
        self,
        state: PendingRequest,
        request_id: str,
        experiments: tuple[Experiment, ...],
        now_ms: int,
        require_inputs: bool = True,
    ) -> Step:
        events: list[JoinEvent] = []
        closed, labelled = list(state.closed), list(state.labelled)
        for experiment in experiments:
            if not self._paired(state, experiment):
                continue
            if require_inputs and experiment.needs_inputs and state.inputs is None:
                continue
            if experiment.name not in closed:
                closed.append(experiment.name)
                events.append(self._event(JoinKind.PAIRED, experiment, request_id, state, now_ms))
            if state.label is not None and experiment.name not in labelled:
                labelled.append(experiment.name)
                events.append(self._event(JoinKind.LABELLED, experiment, request_id, state, now_ms))
        state = replace(state, closed=tuple(closed), labelled=tuple(labelled))
        if self._complete(state, experiments):
            # Everything is emitted: keep only what recognises late duplicates.
            state = PendingRequest(
                state.model, state.first_seen_ms, closed=state.closed, labelled=state.labelled
            )
        return Step(state, tuple(events))

    def _event(
        self,
        kind: JoinKind,
        experiment: Experiment,
        request_id: str,
        state: PendingRequest,
        now_ms: int,
        reason: ExpiryReason | None = None,
    ) -> JoinEvent:
        candidate = self._candidate(state, experiment)
        return JoinEvent(
            kind,
            experiment.name,
            request_id,
            now_ms,
            _prediction(state.live, request_id, state, Role.LIVE),
            _prediction(candidate, request_id, state, Role.SHADOW),
            state.segments,
            state.label,
            None if reason is None else reason.value,
            state.inputs if experiment.needs_inputs else None,
        )


def _prediction(
    stored: StoredPrediction | None, request_id: str, state: PendingRequest, role: Role
) -> Prediction | None:
    if stored is None:
        return None
    return Prediction(
        request_id,
        state.model,
        stored.version,
        role,
        stored.timestamp_ms,
        stored.value,
        stored.probabilities,
        stored.latency_ms,
        stored.error,
        state.segments,
    )
