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

import struct
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from streams.join.experiments import Experiment, ExperimentsFile
from streams.join.pairing import Outcome
from streams.records import ExpiryReason, GroundTruth, JoinKind, ModelInput, Prediction, Role

__all__ = [
    "Emitted",
    "Slot",
    "SlotPairing",
    "SlotStep",
    "StoreKey",
    "changelog_key",
    "encode_long",
    "encode_text",
    "key_from_changelog",
    "request_id_of",
    "request_key",
]

_pack_double = struct.Struct("<d").pack
_EMPTY_MAP = b"\x00"
_KIND_BYTE = {JoinKind.PAIRED: b"\x00", JoinKind.LABELLED: b"\x02", JoinKind.EXPIRED: b"\x04"}
# Enum members as plain globals: an Enum class attribute lookup is a descriptor call.
_LIVE = Role.LIVE
_PAIRED, _LABELLED, _EXPIRED = JoinKind.PAIRED, JoinKind.LABELLED, JoinKind.EXPIRED


def encode_long(n: int) -> bytes:
    """Avro long: zig-zag varint."""
    n = (n << 1) ^ (n >> 63)
    if n < 0x80:
        return _BYTE[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_BYTE = tuple(bytes((b,)) for b in range(256))
_SIZE = tuple(bytes((n << 1,)) for n in range(64))
"""Avro lengths 0..63: one byte each."""


def _size(n: int) -> bytes:
    return _SIZE[n] if n < 64 else encode_long(n)


_LONGS: dict[int, bytes] = {}


def _timestamp(ms: int) -> bytes:
    """encode_long for clock readings: a batch stamps many records with the same one."""
    found = _LONGS.get(ms)
    if found is None:
        if len(_LONGS) >= 1024:
            _LONGS.clear()
        found = _LONGS[ms] = encode_long(ms)
    return found


_TEXT: dict[str, bytes] = {}


def encode_text(s: str) -> bytes:
    """Avro string (length + UTF-8); names that repeat (models, versions, experiments,
    segment keys and values) are cached."""
    found = _TEXT.get(s)
    if found is None:
        found = _text(s)
        if len(_TEXT) < 4096 and len(found) <= 64:
            _TEXT[s] = found
    return found


def _text(s: str) -> bytes:
    raw = s.encode()
    return _size(len(raw)) + raw


_MAPS: dict[tuple[tuple[str, str], ...], bytes] = {}


def encode_string_map(values: Mapping[str, str]) -> bytes:
    """An Avro map<string> in one block, as fastavro writes it (segment maps repeat, so
    their bytes are cached)."""
    if not values:
        return _EMPTY_MAP
    items = tuple(values.items())
    found = _MAPS.get(items)
    if found is None:
        parts = [_size(len(items))]
        for key, value in items:
            parts.append(encode_text(key))
            parts.append(encode_text(value))
        parts.append(_EMPTY_MAP)
        found = b"".join(parts)
        if len(_MAPS) >= 4096:
            _MAPS.clear()
        _MAPS[items] = found
    return found


def encode_label(value: float | str) -> bytes:
    """A label as the JoinEvent ``label`` union writes it (branch 1 double, 2 string)."""
    if isinstance(value, str):
        return b"\x04" + encode_text(value)
    return b"\x02" + _pack_double(float(value))


StoreKey = int | bytes
"""A request id as the state store holds it (see :func:`request_key`)."""


def request_key(request_id: str) -> StoreKey:
    """The store key of a request id: a canonical (lower-case) UUID as its 128-bit int,
    anything else as its UTF-8 bytes.

    Half the memory of the 36-character text for the ids the hook makes, and a distinct
    type, so no text id can collide with a UUID's key.

    Examples
    --------
    >>> request_key("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b") == 0x0190A1B2C3D47E5F8A9B0C1D2E3F4A5B
    True
    >>> request_key("order-17")
    b'order-17'
    """
    if (
        len(request_id) == 36
        and request_id[8] == request_id[13] == request_id[18] == request_id[23] == "-"
        and request_id.islower()
    ):
        digits = request_id.replace("-", "")
        # int() would also take "_", signs, spaces and non-ASCII digits: only [0-9a-f] map.
        if len(digits) == 32 and digits.isascii() and digits.isalnum():
            try:
                return int(digits, 16)
            except ValueError:  # a letter past f
                pass
    return request_id.encode()


def request_id_of(key: StoreKey) -> str:
    """The request id a store key was made from."""
    if isinstance(key, bytes):
        return key.decode()
    text = f"{key:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def changelog_key(key: StoreKey) -> bytes:
    """The changelog record key: 16 bytes for a UUID, else the id's UTF-8 (prefixed by
    0xFF, never valid UTF-8, when that is 16 bytes long too)."""
    if isinstance(key, int):
        return key.to_bytes(16, "big")
    return b"\xff" + key if len(key) == 16 else key


def key_from_changelog(data: bytes) -> StoreKey:
    """The inverse of :func:`changelog_key`."""
    if len(data) == 16:
        return int.from_bytes(data, "big")
    if len(data) == 17 and data[0] == 0xFF:
        return data[1:]
    return data


class Slot:
    """One request's stage-1 state while a record is applied to it (mutable).

    At rest it is :meth:`pack`'ed: an Avro :class:`~streams.records.JoinSlot` body.
    """

    __slots__ = (
        "candidates",
        "closed",
        "first_seen_ms",
        "inputs",
        "label",
        "labelled",
        "live",
        "model",
        "segments",
    )

    def __init__(self, model: str, first_seen_ms: int, segments: bytes = _EMPTY_MAP) -> None:
        self.model = model
        self.first_seen_ms = first_seen_ms
        self.segments = segments
        self.live: bytes | None = None
        self.candidates: dict[str, bytes] = {}
        self.inputs: bytes | None = None
        self.label: bytes | None = None
        self.closed: list[str] = []
        self.labelled: list[str] = []

    def pack(self) -> bytes:
        """The Avro body of this state (JoinSlot, fields in schema order)."""
        segments, live, candidates = self.segments, self.live, self.candidates
        parts = [
            encode_text(self.model),
            _timestamp(self.first_seen_ms),
            _size(len(segments)),
            segments,
        ]
        if live is None:
            parts.append(b"\x00")
        else:
            parts += (b"\x02", _size(len(live)), live)
        if candidates:
            parts.append(_size(len(candidates)))
            for version, stored in candidates.items():
                parts += (encode_text(version), _size(len(stored)), stored)
        parts.append(b"\x00")
        _optional_bytes(parts, self.inputs)
        _optional_bytes(parts, self.label)
        for names in (self.closed, self.labelled):
            if names:
                parts.append(_size(len(names)))
                parts.extend(encode_text(name) for name in names)
            parts.append(b"\x00")
        return b"".join(parts)

    @classmethod
    def unpack(cls, data: bytes) -> Slot:
        """Read :meth:`pack`'s bytes (single-block maps and arrays, as it writes them)."""
        try:
            return _unpack(cls, data)
        except IndexError:
            raise ValueError("join slot is truncated") from None

    @staticmethod
    def first_seen(data: bytes) -> int:
        """``first_seen_ms`` of packed bytes, read without unpacking the rest."""
        n, i = _varint(data, 0)
        return _varint(data, i + n)[0]


def _varint(data: bytes, i: int) -> tuple[int, int]:
    """(zig-zag decoded long, next index)."""
    b = data[i]
    if b < 0x80:
        return (b >> 1) ^ -(b & 1), i + 1
    n = b & 0x7F
    shift = 7
    i += 1
    while b & 0x80:
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
    return (n >> 1) ^ -(n & 1), i


_NAMES: dict[bytes, str] = {}


def _name(raw: bytes) -> str:
    """Decoded model, version and experiment names: the same few, over and over."""
    name = _NAMES.get(raw)
    if name is None:
        if len(_NAMES) >= 4096:
            _NAMES.clear()
        name = _NAMES[raw] = raw.decode()
    return name


def _unpack(cls: type[Slot], data: bytes) -> Slot:
    # Lengths and counts below 64 are one byte (even, zig-zag): read inline, the rest
    # through _varint. Negative lengths cannot come out of either path unnoticed: a
    # negative slice end makes the final length check fail.
    n = data[0]
    n, i = (n >> 1, 1) if n < 0x80 else _varint(data, 0)
    model = _name(data[i : i + n])
    first_seen, i = _varint(data, i + n)
    n = data[i]
    n, i = (n >> 1, i + 1) if n < 0x80 else _varint(data, i)
    slot = cls(model, first_seen, data[i : i + n])
    i += n
    if data[i]:
        n = data[i + 1]
        n, i = (n >> 1, i + 2) if n < 0x80 else _varint(data, i + 1)
        slot.live = data[i : i + n]
        i += n
    else:
        i += 1
    count = data[i]
    if count:
        count, i = _varint(data, i)
        candidates = slot.candidates
        for _ in range(count):
            n = data[i]
            n, i = (n >> 1, i + 1) if n < 0x80 else _varint(data, i)
            version = _name(data[i : i + n])
            i += n
            n = data[i]
            n, i = (n >> 1, i + 1) if n < 0x80 else _varint(data, i)
            candidates[version] = data[i : i + n]
            i += n
        i = _end_of_block(data, i)
    else:
        i += 1
    if data[i]:
        n, i = _varint(data, i + 1)
        slot.inputs = data[i : i + n]
        i += n
    else:
        i += 1
    if data[i]:
        n = data[i + 1]
        n, i = (n >> 1, i + 2) if n < 0x80 else _varint(data, i + 1)
        slot.label = data[i : i + n]
        i += n
    else:
        i += 1
    for names in (slot.closed, slot.labelled):
        count = data[i]
        if count:
            count, i = _varint(data, i)
            for _ in range(count):
                n = data[i]
                n, i = (n >> 1, i + 1) if n < 0x80 else _varint(data, i)
                names.append(_name(data[i : i + n]))
                i += n
            i = _end_of_block(data, i)
        else:
            i += 1
    if i != len(data):
        raise ValueError(f"join slot has {len(data) - i} bytes left over")
    return slot


def _end_of_block(data: bytes, i: int) -> int:
    if data[i] != 0:
        raise ValueError("join slot has more than one block in a map or array")
    return i + 1


def _optional_bytes(parts: list[bytes], value: bytes | None) -> None:
    if value is None:
        parts.append(b"\x00")
    else:
        parts += (b"\x02", _size(len(value)), value)


@dataclass(frozen=True, slots=True)
class Emitted:
    """One join event, already encoded (Confluent wire format)."""

    experiment: str
    kind: JoinKind
    reason: str | None
    value: bytes

    @property
    def key(self) -> bytes:
        """The join-events topic key: the experiment."""
        return self.experiment.encode()


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
        elif slot.segments == _EMPTY_MAP:
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
        prefix = _text(p.request_id) + encode_text(p.model)
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
        rid = _text(request_id)
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
                _timestamp(now_ms),
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
