"""The bytes of a stage-2 checkpoint: the judge's state as JSON, never pickle.

Decoding builds data (None, bools, ints, floats, strings, lists, tuples, dicts, sets,
Counters, deques, float64 arrays) and instances of the classes in :data:`CLASSES` only,
found by name in that table: nothing in a file can name a function, a module or any
other class, so loading a checkpoint runs no code but those classes' own
``__setstate__``. An object is written as its class's name and its ``__getstate__()``
(the state pickle would take, so the classes' own hooks still choose what is kept) and
read back with ``object.__new__(cls)`` and ``__setstate__`` (or its attributes set, as
pickle does). An object or container reached twice is written once and referred to by
its position, so shared statistics (a window and the battery holding the same test) stay
shared. Floats are exact: ``repr`` in the JSON, NaN and infinities included, and runs
of floats (a window's pairs, sorted samples) as little-endian float64 bytes after it: a
file is one line of JSON, a newline, then those bytes.

Examples
--------
>>> from collections import Counter
>>> shared = [1.5, float("nan")]
>>> value = {"a": (shared, shared), ("k", 2): Counter(x=3)}
>>> back = loads(dumps(value))
>>> back[("k", 2)], back["a"][0] is back["a"][1], repr(back["a"][0])
(Counter({'x': 3}), True, '[1.5, nan]')
>>> loads(b'{"o": "os.system", "v": ["true"]}')
Traceback (most recent call last):
...
ValueError: not a checkpoint class: 'os.system'
"""

from __future__ import annotations

import json
import sys
from array import array
from collections import Counter, deque
from typing import Any

import numpy as np

from streams.join.judge import ExperimentState
from streams.stats import asymptotic, categorical, metrics, paired, ppi, quantile_cs, twosample
from streams.stats._sorted import SortedList
from streams.stats.bounded import BoundedCS
from streams.stats.monitor import ExperimentMonitor
from streams.stats.monitor_state import Battery
from streams.stats.results import TestResult
from streams.stats.rules import ExperimentRules, Guardrail, Rule
from streams.stats.sequential import MixtureSPRT, _Sums
from streams.stats.signed_rank import Wilcoxon
from streams.stats.windows import Window

__all__ = ["CLASSES", "dumps", "loads"]

CLASSES: tuple[type, ...] = (
    ExperimentState,
    ExperimentMonitor,
    ExperimentRules,
    Rule,
    Guardrail,
    metrics.MetricSpec,
    metrics.MetricRegistry,
    Battery,
    Window,
    SortedList,
    TestResult,
    MixtureSPRT,
    _Sums,
    asymptotic.AsymptoticCS,
    asymptotic._Moments,
    BoundedCS,
    ppi.PredictionPowered,
    ppi._Moments,
    paired.PairedT,
    paired.SignTest,
    paired.McNemar,
    Wilcoxon,
    twosample.KS,
    twosample.MannWhitney,
    twosample.QuantileRatio,
    twosample.TwoProportions,
    quantile_cs.QuantileCS,
    quantile_cs._Binned,
    categorical.ChiSquare,
    categorical.PSI,
    categorical.Agreement,
)
"""Every class a judge's state may hold: the only classes a checkpoint can construct."""

_BY_NAME = {f"{c.__module__}.{c.__qualname__}": c for c in CLASSES}
_NAME_OF = {c: name for name, c in _BY_NAME.items()}
_SCALARS = frozenset((str, int, float, bool, type(None)))
_FLOATS = {float}
_PACK_FROM = 8
"""Lists of at least this many floats are packed (as float64 bytes after the JSON)."""
_LITTLE = sys.byteorder == "little"


def dumps(value: object) -> bytes:
    """``value`` as compact JSON, a newline, then the floats it packed; TypeError naming
    the first object of another class."""
    encoder = _Encoder()
    tree = json.dumps(encoder.encode(value), separators=(",", ":")).encode()
    floats = encoder.floats
    if not _LITTLE:
        floats.byteswap()
    return tree + b"\n" + floats.tobytes()


def loads(data: bytes) -> Any:
    """What :func:`dumps` wrote; ValueError (or another Exception) for anything else."""
    tree, _, packed = data.partition(b"\n")
    floats = array("d")
    floats.frombytes(packed)  # ValueError unless whole float64s
    if not _LITTLE:
        floats.byteswap()
    return _Decoder(floats).decode(json.loads(tree))


class _Encoder:
    def __init__(self) -> None:
        self.memo: dict[int, tuple[int, object]] = {}
        """id -> (position, the object: kept alive so its id is not reused meanwhile)."""
        self.floats = array("d")
        """The packed floats, in the order the tree names them."""

    def pack(self, values: Any) -> list[int]:
        start = len(self.floats)
        self.floats.extend(values)
        return [start, len(self.floats) - start]

    def encode(self, value: Any) -> Any:
        kind = type(value)
        if kind in _SCALARS:
            return value
        seen = self.memo.get(id(value))
        if seen is not None:
            return {"r": seen[0]}
        self.memo[id(value)] = (len(self.memo), value)
        if kind is list:
            return self.items(value)
        if kind is tuple:
            return {"t": self.items(value)}
        if kind is dict or kind is Counter:
            pairs = self.items([x for kv in value.items() for x in kv], pack=False)
            return {"d" if kind is dict else "c": pairs}
        if kind is deque:
            return {"q": self.items(value), "m": value.maxlen}
        if kind is set or kind is frozenset:
            return {"s" if kind is set else "f": self.items(list(value), pack=False)}
        if kind is np.ndarray and value.dtype == np.float64 and value.ndim == 1:
            return {"a": self.pack(value.tolist())}
        name = _NAME_OF.get(kind)
        if name is None:
            raise TypeError(f"not a checkpoint class: {kind.__module__}.{kind.__qualname__}")
        return {"o": name, "v": self.encode(value.__getstate__())}

    def items(self, values: list[Any] | tuple[Any, ...] | deque[Any], pack: bool = True) -> Any:
        kinds = set(map(type, values))
        if kinds <= _SCALARS:
            if pack and kinds == _FLOATS and len(values) >= _PACK_FROM:
                return {"F": self.pack(values)}
            return list(values)
        scalars, encode = _SCALARS, self.encode
        return [x if type(x) in scalars else encode(x) for x in values]


_PENDING = object()
"""The memo's placeholder for a tuple or object whose parts are being decoded."""


class _Decoder:
    def __init__(self, floats: array[float]) -> None:
        self.memo: list[Any] = []
        self.floats = floats

    def unpack(self, span: Any) -> list[float]:
        start, count = span
        if not (type(start) is int and type(count) is int and start >= 0 and count >= 0):
            raise ValueError(f"not a span of the packed floats: {span!r}")
        if start + count > len(self.floats):
            raise ValueError(f"not a span of the packed floats: {span!r}")
        return self.floats[start : start + count].tolist()

    def decode(self, node: Any) -> Any:
        if type(node) is list:
            out: list[Any] = []
            self.memo.append(out)
            out.extend(self.decode(x) for x in node)
            return out
        if type(node) is not dict:
            return node  # a JSON scalar
        ((tag, body), *rest) = node.items()
        if tag == "r":
            if type(body) is not int or not 0 <= body < len(self.memo):
                raise ValueError(f"a reference to nothing decoded: {body!r}")
            found = self.memo[body]
            if found is _PENDING:
                raise ValueError("a reference to an object inside itself")
            return found
        at = len(self.memo)
        self.memo.append(_PENDING)
        value: Any
        if tag == "F":
            value = self.unpack(body)
        elif tag == "t":
            value = tuple(self.items(body))
        elif tag in ("d", "c"):
            value = dict() if tag == "d" else Counter()
            self.memo[at] = value
            parts = [self.decode(x) for x in body]
            dict.update(value, zip(parts[::2], parts[1::2], strict=True))
        elif tag == "q":
            value = deque(maxlen=dict(rest)["m"])
            self.memo[at] = value
            value.extend(self.items(body))
        elif tag in ("s", "f"):
            value = (set if tag == "s" else frozenset)(self.decode(x) for x in body)
        elif tag == "a":
            value = np.array(self.unpack(body), dtype=np.float64)
        elif tag == "o":
            value = self.instance(at, body, dict(rest)["v"])
        else:
            raise ValueError(f"unknown checkpoint node {tag!r}")
        self.memo[at] = value
        return value

    def items(self, node: Any) -> list[Any]:
        if type(node) is dict and set(node) == {"F"}:
            return self.unpack(node["F"])
        if type(node) is not list:
            raise ValueError("expected a list of items")
        return [self.decode(x) for x in node]

    def instance(self, at: int, name: str, state_node: Any) -> object:
        cls = _BY_NAME.get(name)
        if cls is None:
            raise ValueError(f"not a checkpoint class: {name!r}")
        obj: Any = object.__new__(cls)
        self.memo[at] = obj
        state = self.decode(state_node)
        setstate = getattr(cls, "__setstate__", None)
        if setstate is not None:
            setstate(obj, state)
            return obj
        # pickle's default: a __dict__, or (a __dict__ or None, the slots' values)
        attributes, slots = state if type(state) is tuple else (state, None)
        if attributes:
            obj.__dict__.update(_attributes(attributes))
        for key, item in _attributes(slots or {}).items():
            setattr(obj, key, item)
        return obj


def _attributes(state: Any) -> dict[str, Any]:
    if type(state) is not dict or not all(type(k) is str for k in state):
        raise ValueError("an object's state must map attribute names to values")
    return state
