"""Join stage 1 on raw Avro bytes: the state machine of :mod:`streams.join.pairing`,
without building a record per state change.

The streaming join keeps each request's state as one compact byte string (a
:class:`~streams.records.JoinSlot` in Avro, no header) and copies the predictions it
receives into the join events it emits byte for byte: a prediction is decoded once, to
validate and route it, and never encoded again. That is what makes stage 1 cost a few
microseconds per record instead of tens (``bench/join.py``).

The rules are :class:`~streams.join.pairing.Pairing`'s, and the tests hold the two to
the same events for every arrival order (``tests/unit/join/test_slots.py``):

* PAIRED once per experiment when live and candidate are both there (and the inputs,
  for experiments with downstream functions; without them by ``pair_ttl`` the pair goes
  out without); LABELLED once per experiment when the label joins a pair;
* a record already present is a duplicate and changes nothing;
* ``pair_ttl`` expires unpaired experiments (``no_shadow`` / ``no_live``), ``label_ttl``
  unlabelled pairs (``no_label``) and lone labels (``label_unknown``).

Byte layout (Avro, so any tool can read the changelog): a stored prediction is the
Prediction body from ``version`` to ``error`` (the request id, model and segments are
the request's); a JoinEvent's nested Prediction is request id + model + stored +
the request's segments, exactly what :class:`~streams.codec.Codec` would write.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from streams.join.experiments import Experiment, ExperimentsFile
from streams.join.pairing import Outcome
from streams.join.slot_bytes import (
    EMPTY_MAP,
    Slot,
    encode_label,
    encode_string_map,
    encode_text,
    text,
    timestamp,
)
from streams.records import ExpiryReason, GroundTruth, JoinKind, ModelInput, Prediction, Role

__all__ = ["Emitted", "SlotPairing", "SlotStep"]

_KIND_BYTE = {JoinKind.PAIRED: b"\x00", JoinKind.LABELLED: b"\x02", JoinKind.EXPIRED: b"\x04"}
# Enum members as plain globals: an Enum class attribute lookup is a descriptor call.
_LIVE = Role.LIVE
_PAIRED, _LABELLED, _EXPIRED = JoinKind.PAIRED, JoinKind.LABELLED, JoinKind.EXPIRED


@dataclass(frozen=True, slots=True)
class Emitted:
    """One join event, already encoded (Confluent wire format)."""

    experiment: str
    kind: JoinKind
    reason: str | None
    value: bytes


@dataclass(frozen=True, slots=True)
class SlotStep:
    """What applying one record (or one expiry check) did to a request."""

    slot: Slot | None
    """The new state; None: delete it."""
    events: tuple[Emitted, ...] = ()
    outcome: Outcome = Outcome.ACCEPTED
    changed: bool = True


Canonical = Callable[[Prediction | ModelInput], bytes]


class SlotPairing:
    """Stage 1 over all experiments of an experiments file, on raw record bytes.

    Parameters
    ----------
    experiments
        The parsed experiments file.
    headers
        The 5-byte wire header of the current ``Prediction``, ``ModelInput`` and
        ``JoinEvent`` schemas (``Codec.header_of``): a record written with another
        schema version is re-encoded (``canonical``) before its bytes are copied.
    canonical
        Encodes a record with the current schema (``Codec.encode``).

    Examples
    --------
    >>> from streams.codec import Codec
    >>> from streams.records import JoinEvent
    >>> codec = Codec()
    >>> exps = ExperimentsFile.parse('''
    ... [[experiments]]
    ... name = "e"
    ... model = "m"
    ... live_version = "v1"
    ... candidate = "v2"
    ... ''')
    >>> pairing = SlotPairing.for_codec(exps, codec)
    >>> live = Prediction("r1", "m", "v1", Role.LIVE, 0, 1.0)
    >>> cand = Prediction("r1", "m", "v2", Role.SHADOW, 0, 1.5)
    >>> step = pairing.on_prediction(None, live, codec.encode(live), now_ms=0)
    >>> step = pairing.on_prediction(step.slot, cand, codec.encode(cand), now_ms=0)
    >>> event = codec.decode_as(JoinEvent, step.events[0].value)
    >>> event.kind.value, event.live.value, event.candidate.value
    ('PAIRED', 1.0, 1.5)
    """

    def __init__(
        self,
        experiments: ExperimentsFile,
        *,
        prediction_header: bytes,
        input_header: bytes,
        event_header: bytes,
        canonical: Canonical,
    ) -> None:
        self.experiments = experiments
        self.pair_ttl_ms = int(experiments.join.pair_ttl_s * 1000)
        self.label_ttl_ms = int(experiments.join.label_ttl_s * 1000)
        self._by_model: dict[str, tuple[Experiment, ...]] = {
            model: experiments.for_model(model)
            for model in {e.model for e in experiments.experiments}
        }
        self._candidates = {
            model: frozenset(e.candidate for e in exps) for model, exps in self._by_model.items()
        }
        self._prediction_header = prediction_header
        self._input_header = input_header
        self._event_header = event_header
        self._canonical = canonical
        self.outcomes: Counter[Outcome] = Counter()
        """Records by outcome since the caller last cleared it."""

    @classmethod
    def for_codec(cls, experiments: ExperimentsFile, codec: object) -> SlotPairing:
        """Headers and re-encoding from a :class:`~streams.codec.Codec`."""
        from streams.records import JoinEvent

        header_of = codec.header_of  # type: ignore[attr-defined]
        return cls(
            experiments,
            prediction_header=header_of(Prediction),
            input_header=header_of(ModelInput),
            event_header=header_of(JoinEvent),
            canonical=codec.encode,  # type: ignore[attr-defined]
        )

    # ------------------------------------------------------------------ records
    def on_prediction(self, slot: Slot | None, p: Prediction, raw: bytes, now_ms: int) -> SlotStep:
        experiments = self._by_model.get(p.model)
        if not experiments:
            return self._count(SlotStep(slot, outcome=Outcome.UNKNOWN_MODEL, changed=False))
        is_live = p.role is _LIVE
        if (is_live and p.version != experiments[0].live_version) or (
            not is_live and p.version not in self._candidates[p.model]
        ):
            return self._count(SlotStep(slot, outcome=Outcome.UNKNOWN_VERSION, changed=False))
        segments = encode_string_map(p.segments)
        if slot is None:
            slot = Slot(p.model, now_ms, segments)
        elif self._complete(slot, experiments) or (
            slot.live is not None if is_live else p.version in slot.candidates
        ):
            return self._count(SlotStep(slot, outcome=Outcome.DUPLICATE, changed=False))
        stored = self._stored(p, raw, segments)
        if is_live:
            slot.live = stored
            if p.segments:  # the live prediction's segments are the request's
                slot.segments = segments
        else:
            slot.candidates[p.version] = stored
        return self._count(self._emit(slot, p.request_id, experiments, now_ms))

    def on_input(
        self, slot: Slot | None, model_input: ModelInput, raw: bytes, now_ms: int
    ) -> SlotStep:
        experiments = self._by_model.get(model_input.model)
        if not experiments:
            return self._count(SlotStep(slot, outcome=Outcome.UNKNOWN_MODEL, changed=False))
        if not any(e.needs_inputs for e in experiments):
            return self._count(SlotStep(slot, outcome=Outcome.NOT_NEEDED, changed=False))
        if slot is None:
            slot = Slot(model_input.model, now_ms, encode_string_map(model_input.segments))
        elif slot.inputs is not None or self._complete(slot, experiments):
            return self._count(SlotStep(slot, outcome=Outcome.DUPLICATE, changed=False))
        elif slot.segments == EMPTY_MAP:
            slot.segments = encode_string_map(model_input.segments)
        if raw[:5] != self._input_header:
            raw = self._canonical(model_input)
        slot.inputs = raw[5:]
        return self._count(self._emit(slot, model_input.request_id, experiments, now_ms))

    def on_label(self, slot: Slot | None, label: GroundTruth, now_ms: int) -> SlotStep:
        experiments = self._by_model.get(label.model)
        if not experiments:
            return self._count(SlotStep(slot, outcome=Outcome.UNKNOWN_MODEL, changed=False))
        if slot is None:
            slot = Slot(label.model, now_ms)
        elif slot.label is not None or self._complete(slot, experiments):
            return self._count(SlotStep(slot, outcome=Outcome.DUPLICATE, changed=False))
        slot.label = encode_label(label.value)
        return self._count(self._emit(slot, label.request_id, experiments, now_ms))

    def expire(self, request_id: str, slot: Slot, now_ms: int) -> SlotStep:
        """Settle what timed out; ``slot=None`` once the request is done with."""
        experiments = self._by_model.get(slot.model, ())
        age = now_ms - slot.first_seen_ms
        events: list[Emitted] = []
        changed = False
        if age >= self.pair_ttl_ms:
            # A pair still waiting for its inputs goes out without them.
            forced = self._emit(slot, request_id, experiments, now_ms, require_inputs=False)
            if forced.events:
                assert forced.slot is not None
                slot, changed = forced.slot, True
                events.extend(forced.events)
                if self._complete(slot, experiments):
                    return SlotStep(slot, tuple(events))
            for experiment in experiments:
                if experiment.name in slot.closed:
                    continue
                slot.closed.append(experiment.name)
                changed = True
                candidate = slot.candidates.get(experiment.candidate)
                if slot.live is not None and candidate is None:
                    reason = ExpiryReason.NO_SHADOW
                elif slot.live is None and candidate is not None:
                    reason = ExpiryReason.NO_LIVE
                else:
                    continue  # nothing of this experiment arrived; a lone label is settled below
                events.append(self._event(_EXPIRED, experiment, request_id, slot, now_ms, reason))
        if age < self.label_ttl_ms:
            return SlotStep(slot, tuple(events), changed=changed)
        for experiment in experiments:
            if experiment.name in slot.labelled:
                continue
            if (
                slot.label is None
                and experiment.name in slot.closed
                and self._paired(slot, experiment)
            ):
                reason = ExpiryReason.NO_LABEL
            elif slot.label is not None and slot.live is None and not slot.candidates:
                reason = ExpiryReason.LABEL_UNKNOWN
            else:
                continue
            events.append(self._event(_EXPIRED, experiment, request_id, slot, now_ms, reason))
        return SlotStep(None, tuple(events))

    # ------------------------------------------------------------------ helpers
    def _count(self, step: SlotStep) -> SlotStep:
        self.outcomes[step.outcome] += 1
        return step

    def _stored(self, p: Prediction, raw: bytes, segments: bytes) -> bytes:
        """The prediction's bytes from ``version`` to ``error``, copied from ``raw``."""
        prefix = text(p.request_id) + encode_text(p.model)
        end = len(raw) - len(segments)
        if not (
            raw[:5] == self._prediction_header
            and raw.startswith(prefix, 5)
            and raw.endswith(segments)
        ):
            # Another schema version or a writer's own block layout: write it our way.
            raw = self._canonical(p)
            end = len(raw) - len(segments)
        return raw[5 + len(prefix) : end]

    @staticmethod
    def _complete(slot: Slot, experiments: tuple[Experiment, ...]) -> bool:
        # ``labelled`` holds each of these experiments' names at most once.
        return len(slot.labelled) >= len(experiments)

    @staticmethod
    def _paired(slot: Slot, experiment: Experiment) -> bool:
        return slot.live is not None and experiment.candidate in slot.candidates

    def _emit(
        self,
        slot: Slot,
        request_id: str,
        experiments: tuple[Experiment, ...],
        now_ms: int,
        require_inputs: bool = True,
    ) -> SlotStep:
        events: list[Emitted] = []
        closed, labelled = slot.closed, slot.labelled
        for experiment in experiments:
            if slot.live is None or experiment.candidate not in slot.candidates:
                continue
            if require_inputs and experiment.needs_inputs and slot.inputs is None:
                continue
            name = experiment.name
            if name not in closed:
                closed.append(name)
                events.append(self._event(_PAIRED, experiment, request_id, slot, now_ms))
            if slot.label is not None and name not in labelled:
                labelled.append(name)
                events.append(self._event(_LABELLED, experiment, request_id, slot, now_ms))
        if self._complete(slot, experiments):
            # Everything is emitted: keep only what recognises late duplicates.
            done = Slot(slot.model, slot.first_seen_ms)
            done.closed, done.labelled = closed, labelled
            slot = done
        return SlotStep(slot, tuple(events))

    def _event(
        self,
        kind: JoinKind,
        experiment: Experiment,
        request_id: str,
        slot: Slot,
        now_ms: int,
        reason: ExpiryReason | None = None,
    ) -> Emitted:
        rid = text(request_id)
        head = rid + encode_text(slot.model)
        segments = slot.segments
        live = slot.live
        candidate = slot.candidates.get(experiment.candidate)
        value = b"".join(
            (
                self._event_header,
                _KIND_BYTE[kind],
                encode_text(experiment.name),
                rid,
                timestamp(now_ms),
                segments,
                b"\x00" if live is None else b"\x02" + head + live + segments,
                b"\x00" if candidate is None else b"\x02" + head + candidate + segments,
                slot.label or b"\x00",
                b"\x00" if reason is None else b"\x02" + encode_text(reason.value),
                b"\x02" + slot.inputs
                if experiment.needs_inputs and slot.inputs is not None
                else b"\x00",
            )
        )
        return Emitted(experiment.name, kind, None if reason is None else reason.value, value)
