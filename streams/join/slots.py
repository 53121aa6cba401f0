"""Join stage 1 on raw Avro bytes: pair live and candidate predictions, then the label,
without building a record per state change.

The streaming join keeps each request's state as one compact byte string (a
:class:`~streams.records.JoinSlot` in Avro, no header) and copies the predictions it
receives into the join events it emits byte for byte: a prediction is decoded once, to
validate and route it, and never encoded again. That is what makes stage 1 cost a few
microseconds per record instead of tens (``bench/join.py``).

The rules (``tests/unit/join/test_slots.py`` holds them to a readable reference state
machine, ``tests/unit/join/pairing.py``, for every arrival order):

* PAIRED once per experiment when live and candidate are both there (and the inputs,
  for experiments with downstream functions; without them by ``pair_ttl`` the pair goes
  out without); LABELLED once per experiment when the label joins a pair;
* a record already present is a duplicate and changes nothing;
* ``pair_ttl`` expires unpaired experiments (``no_shadow`` / ``no_live``), ``label_ttl``
  unlabelled pairs (``no_label``) and lone labels (``label_unknown``).

Byte layout (Avro, so any tool can read the changelog): a stored prediction is the
Prediction body without ``request_id``, ``model`` and ``segments`` (they are the
request's); a JoinEvent's nested Prediction puts them back, exactly what
:class:`~streams.codec.Codec` would write. :mod:`streams.join.layout` checks at import
that the ``.avsc`` files still have the layout these bytes assume.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from streams.avro_bytes import EMPTY_MAP, encode_label, encode_string_map, encode_text, text
from streams.join.experiments import Experiment, ExperimentsFile
from streams.join.layout import LAYOUT
from streams.join.slot_events import join_event
from streams.join.slot_state import Slot
from streams.records import ExpiryReason, GroundTruth, JoinKind, ModelInput, Prediction, Role

__all__ = ["EncodedJoinEvent", "JoinOutcome", "SlotPairing"]

_KIND_BYTE = {JoinKind.PAIRED: b"\x00", JoinKind.LABELLED: b"\x02", JoinKind.EXPIRED: b"\x04"}
# Enum members as plain globals: an Enum class attribute lookup is a descriptor call.
_LIVE = Role.LIVE
_PAIRED, _LABELLED, _EXPIRED = JoinKind.PAIRED, JoinKind.LABELLED, JoinKind.EXPIRED
_SEGMENTS_LAST, _SKIP_MIDDLE = LAYOUT.segments_last, LAYOUT.skip_middle


class JoinOutcome(StrEnum):
    """Why applying a record (or an expiry check) left a request's state as it was, or
    ``ACCEPTED`` (the count of records that changed it)."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    UNKNOWN_MODEL = "unknown_model"
    UNKNOWN_VERSION = "unknown_version"
    NOT_NEEDED = "not_needed"
    """Inputs of a model no experiment runs downstream functions for."""
    NOT_DUE = "not_due"
    """An expiry check that found nothing timed out."""


_DUPLICATE, _NOT_DUE = JoinOutcome.DUPLICATE, JoinOutcome.NOT_DUE
_UNKNOWN_MODEL, _UNKNOWN_VERSION = JoinOutcome.UNKNOWN_MODEL, JoinOutcome.UNKNOWN_VERSION


class EncodedJoinEvent(NamedTuple):
    """One join event, already encoded (Confluent wire format), as :meth:`SlotPairing.take_events`
    hands it out."""

    experiment: str
    kind: JoinKind
    reason: str | None
    value: bytes


@dataclass(frozen=True, slots=True)
class _Rule:
    """One experiment as the rules read it, with the fixed first bytes of its events
    (wire header, kind and experiment name) by kind."""

    name: str
    candidate: str
    needs_inputs: bool
    paired: bytes
    labelled: bytes
    expired: bytes

    @classmethod
    def of(cls, experiment: Experiment, event_header: bytes) -> _Rule:
        name = encode_text(experiment.name)
        paired, labelled, expired = (
            event_header + _KIND_BYTE[kind] + name for kind in (_PAIRED, _LABELLED, _EXPIRED)
        )
        return cls(
            experiment.name,
            experiment.candidate,
            experiment.needs_inputs,
            paired,
            labelled,
            expired,
        )


@dataclass(frozen=True, slots=True)
class _Model:
    """The experiments of one model. A request is complete (every event emitted) once
    its ``labelled`` holds every rule's name: ``len(slot.labelled) >= len(rules)``,
    as each name is in it at most once."""

    rules: tuple[_Rule, ...]
    live_version: str
    candidates: frozenset[str]
    needs_inputs: bool
    text: bytes
    """The model name as an Avro string."""


_event = tuple.__new__
"""``_event(EncodedJoinEvent, (fields...))``: the named tuple built at C speed, without its
``__new__`` (a Python frame per event: ~0.5 us against ~0.15)."""

_NO_MODEL = _Model((), "", frozenset(), False, b"")
"""A state's model that no experiment names (any longer): nothing to emit for it."""

Canonical = Callable[[Prediction | ModelInput], bytes]


class SlotPairing:
    """Stage 1 over all experiments of an experiments file, on raw record bytes.

    One API for the streaming join, replay and tests: :meth:`add_prediction`,
    :meth:`add_label`, :meth:`add_input` and :meth:`expire` return the request's new
    state (a :class:`Slot` to store; ``None`` from :meth:`expire`: delete it) or the
    :class:`JoinOutcome` that left it unchanged, and queue the join events they emit for
    :meth:`take_events`.

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
    >>> slot = pairing.add_prediction(None, live, codec.encode(live), now_ms=0)
    >>> slot = pairing.add_prediction(slot, cand, codec.encode(cand), now_ms=0)
    >>> event = codec.decode_as(JoinEvent, pairing.take_events()[0].value)
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
        self._models: dict[str, _Model] = {}
        for model in {e.model for e in experiments.experiments}:
            of_model = experiments.for_model(model)
            rules = tuple(_Rule.of(e, event_header) for e in of_model)
            self._models[model] = _Model(
                rules,
                of_model[0].live_version,
                frozenset(e.candidate for e in of_model),
                any(e.needs_inputs for e in of_model),
                encode_text(model),
            )
        self._prediction_header = prediction_header
        self._input_header = input_header
        self._queue: list[EncodedJoinEvent] = []
        self._canonical = canonical

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

    def take_events(self) -> list[EncodedJoinEvent]:
        """The join events queued since the last call, in the order they were emitted."""
        events, self._queue = self._queue, []
        return events

    # ------------------------------------------------------------------ records
    def add_prediction(
        self, slot: Slot | None, p: Prediction, raw: bytes, now_ms: int
    ) -> Slot | JoinOutcome:
        """Apply a prediction: the request's new state, or the outcome that left it as it
        was; its events are queued."""
        model = self._models.get(p.model)
        if model is None:
            return _UNKNOWN_MODEL
        is_live = p.role is _LIVE
        if (p.version != model.live_version) if is_live else (p.version not in model.candidates):
            return _UNKNOWN_VERSION
        segments = encode_string_map(p.segments)
        fresh = slot is None
        if slot is None:
            slot = Slot(p.model, now_ms, segments)
        elif len(slot.labelled) >= len(model.rules) or (
            slot.live is not None if is_live else p.version in slot.candidates
        ):
            return _DUPLICATE
        rid = text(p.request_id)
        # The stored prediction: its bytes after ``model`` without ``segments``, from raw.
        prefix = rid + model.text
        if _SEGMENTS_LAST:
            if not (
                raw.startswith(self._prediction_header)
                and raw.startswith(prefix, 5)
                and raw.endswith(segments)
            ):
                # Another schema version or a writer's own block layout: write it our way.
                raw = self._canonical(p)
            stored = raw[5 + len(prefix) : len(raw) - len(segments)]
        else:
            stored = self._stored(p, raw, prefix, segments)
        if is_live:
            slot.live = stored
            if p.segments:  # the live prediction's segments are the request's
                slot.segments = segments
        else:
            slot.candidates[p.version] = stored
        return slot if fresh else self._emit(slot, rid, model, now_ms)

    def add_input(
        self, slot: Slot | None, model_input: ModelInput, raw: bytes, now_ms: int
    ) -> Slot | JoinOutcome:
        """Apply a model input, as :meth:`add_prediction`."""
        model = self._models.get(model_input.model)
        if model is None:
            return _UNKNOWN_MODEL
        if not model.needs_inputs:
            return JoinOutcome.NOT_NEEDED
        fresh = slot is None
        if slot is None:
            slot = Slot(model_input.model, now_ms, encode_string_map(model_input.segments))
        elif slot.inputs is not None or len(slot.labelled) >= len(model.rules):
            return _DUPLICATE
        elif slot.segments == EMPTY_MAP:
            slot.segments = encode_string_map(model_input.segments)
        if raw[:5] != self._input_header:
            raw = self._canonical(model_input)
        slot.inputs = raw[5:]
        return slot if fresh else self._emit(slot, text(model_input.request_id), model, now_ms)

    def add_label(self, slot: Slot | None, label: GroundTruth, now_ms: int) -> Slot | JoinOutcome:
        """Apply a label, as :meth:`add_prediction`."""
        model = self._models.get(label.model)
        if model is None:
            return _UNKNOWN_MODEL
        fresh = slot is None
        if slot is None:
            slot = Slot(label.model, now_ms)
        elif slot.label is not None or len(slot.labelled) >= len(model.rules):
            return _DUPLICATE
        slot.label = encode_label(label.value)
        return slot if fresh else self._emit(slot, text(label.request_id), model, now_ms)

    def expire(self, request_id: str, slot: Slot, now_ms: int) -> Slot | JoinOutcome | None:
        """Settle what timed out: the state to keep, ``None`` once the request is done
        with (delete it), or ``NOT_DUE``; the events are queued."""
        mark = len(self._queue)
        model = self._models.get(slot.model, _NO_MODEL)
        rules = model.rules
        rid = text(request_id)
        age = now_ms - slot.first_seen_ms
        changed = False
        if age >= self.pair_ttl_ms:
            # A pair still waiting for its inputs goes out without them.
            forced = self._emit(slot, rid, model, now_ms, require_inputs=False)
            if len(self._queue) > mark:
                slot, changed = forced, True
                if len(slot.labelled) >= len(rules):
                    return slot
            for rule in rules:
                if rule.name in slot.closed:
                    continue
                slot.closed.append(rule.name)
                changed = True
                candidate = slot.candidates.get(rule.candidate)
                if slot.live is not None and candidate is None:
                    self._expired(rule, rid, slot, now_ms, ExpiryReason.NO_SHADOW)
                elif slot.live is None and candidate is not None:
                    self._expired(rule, rid, slot, now_ms, ExpiryReason.NO_LIVE)
                # else nothing of this experiment arrived; a lone label is settled below
        if age < self.label_ttl_ms:
            return slot if changed else _NOT_DUE
        for rule in rules:
            if rule.name in slot.labelled:
                continue
            if (
                slot.label is None
                and rule.name in slot.closed
                and slot.live is not None
                and rule.candidate in slot.candidates
            ):
                self._expired(rule, rid, slot, now_ms, ExpiryReason.NO_LABEL)
            elif slot.label is not None and slot.live is None and not slot.candidates:
                self._expired(rule, rid, slot, now_ms, ExpiryReason.LABEL_UNKNOWN)
        return None

    # ------------------------------------------------------------------ helpers
    def _emit(
        self, slot: Slot, rid: bytes, model: _Model, now_ms: int, require_inputs: bool = True
    ) -> Slot:
        """Queue the PAIRED and LABELLED events now due; the state to keep. (A request's
        first record has nothing to pair yet: the ``add_*`` methods skip this for it.)"""
        if slot.live is not None:
            queue = self._queue
            closed, labelled, label = slot.closed, slot.labelled, slot.label
            waiting_for_inputs = require_inputs and slot.inputs is None
            for rule in model.rules:
                candidate = slot.candidates.get(rule.candidate)
                with_inputs = rule.needs_inputs
                if candidate is None or (waiting_for_inputs and with_inputs):
                    continue
                name = rule.name
                if name not in closed:
                    closed.append(name)
                    value = join_event(rule.paired, rid, slot, candidate, now_ms, with_inputs)
                    queue.append(_event(EncodedJoinEvent, (name, _PAIRED, None, value)))
                if label is not None and name not in labelled:
                    labelled.append(name)
                    value = join_event(rule.labelled, rid, slot, candidate, now_ms, with_inputs)
                    queue.append(_event(EncodedJoinEvent, (name, _LABELLED, None, value)))
        if len(slot.labelled) >= len(model.rules):
            # Everything is emitted: keep only what recognises late duplicates.
            done = Slot(slot.model, slot.first_seen_ms)
            done.closed, done.labelled = slot.closed, slot.labelled
            return done
        return slot

    def _expired(
        self, rule: _Rule, rid: bytes, slot: Slot, now_ms: int, reason: ExpiryReason
    ) -> None:
        candidate = slot.candidates.get(rule.candidate)
        encoded_reason = b"\x02" + encode_text(reason.value)
        value = join_event(
            rule.expired, rid, slot, candidate, now_ms, rule.needs_inputs, encoded_reason
        )
        self._queue.append(EncodedJoinEvent(rule.name, _EXPIRED, reason.value, value))

    def _stored(self, p: Prediction, raw: bytes, prefix: bytes, segments: bytes) -> bytes:
        """The stored prediction where ``segments`` is not the Prediction's last field:
        the bytes after ``model`` with the segments cut out (see :mod:`streams.join.layout`)."""
        start = 5 + len(prefix)
        if raw.startswith(self._prediction_header) and raw.startswith(prefix, 5):
            at = _SKIP_MIDDLE(raw, start)
            if raw.startswith(segments, at):
                return raw[start:at] + raw[at + len(segments) :]
        raw = self._canonical(p)  # another schema version or a writer's own map blocks
        at = _SKIP_MIDDLE(raw, start)
        return raw[start:at] + raw[at + len(segments) :]
