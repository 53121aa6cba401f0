"""Candidate models behind one interface: inputs in, one :class:`Outcome` per input out.

A candidate may be

* a **callable** ``f(features) -> output``, called once per input with the features as
  one dict (numeric and categorical merged; the keys of ``extra`` too when it is a dict,
  else ``extra`` under the key ``"extra"``);
* an object with **predict(features)**, called the same way;
* an object with **predict_batch(list_of_feature_dicts) -> outputs**, called once per batch;
* a **scikit-learn-style estimator** (it has ``fit`` or ``get_params``): ``predict`` on a
  2-D array with one column per feature name (``features``, by default the sorted
  numeric feature names of the first input), plus ``predict_proba`` when it has one;
* an object with **predict_outcomes(list_of_inputs) -> list of Outcome** and
  ``required_features(first_input)``, which owns its errors, deadlines and latency (a
  remote candidate, :class:`streams.oip.OIPCandidate`): called as it is.

An output becomes a prediction value: ``int``, ``numpy.integer``, ``bool`` and ``str``
are class labels (``str``), floats are regression values; a mapping with ``"value"`` (and
optionally ``"probabilities"``) gives both, any other mapping is a probability vector whose
most probable class is the value. Estimators with ``classes_`` always give labels.

Errors stay with the inputs that caused them: a raising per-record call gives that input
an error outcome; a raising batch call is retried input by input to find the bad ones.
With a deadline (``timeout_ms``) the calls run on a fixed pool of ``threads`` threads
(:mod:`streams.callpool`); late per-record calls give error ``"timeout"`` to their
input only, a late batch call to every input of that batch (retrying a slow batch input
by input could stall for ``batch_size`` deadlines). A thread stuck in a late call is not
replaced; while every thread is stuck, :meth:`ModelAdapter.score` leaves the inputs it
could not run unscored (``None``), for the worker to hold until a thread is free.
Latency: per-record calls are timed one by one; a batch call's time is divided evenly
among its inputs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np

from streams.callpool import CallPool, PoolExhausted, Timeout
from streams.records import ModelInput
from streams.worker.loading import exception_line

__all__ = [
    "DEFAULT_THREADS",
    "ModelAdapter",
    "ModelKind",
    "Outcome",
    "features_of",
    "normalize_output",
]

ModelKind = Literal["callable", "predict", "predict_batch", "sklearn", "outcomes"]
Value = float | str
TIMEOUT = "timeout"
NO_THREAD = "no free model thread: all are stuck in calls past their deadline"
DEFAULT_THREADS = 4
MAX_ERROR_CHARS = 500


class Outcome(NamedTuple):
    """A model's answer to one input: a value (and probabilities) or an error.

    A named tuple, not a dataclass: one is built per input, and a frozen dataclass's
    ``__init__`` costs several times a tuple's.
    """

    value: Value | None = None
    probabilities: Mapping[str, float] | None = None
    latency_ms: float = 0.0
    error: str | None = None
    cpu_ms: float | None = None
    """CPU time of the call in the thread that ran it (a batched call's split equally)."""


def features_of(record: ModelInput) -> dict[str, Any]:
    """The features of one input as the single dict a per-record model is called with.

    Examples
    --------
    >>> features_of(ModelInput("r1", "churn", 0, {"age": 41.0}, {"plan": "pro"}, extra={"n": 1}))
    {'n': 1, 'age': 41.0, 'plan': 'pro'}
    """
    return record.feature_dict()


def _error_text(exc: BaseException) -> str:
    """``Type: first line of the message``, at most MAX_ERROR_CHARS: one clear line."""
    text = exception_line(exc)
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


def _label_or_number(output: Any) -> Value:
    if isinstance(output, bool | np.bool_ | str | int | np.integer):
        return str(output)
    if isinstance(output, float | np.floating):
        return float(output)
    raise TypeError(f"unsupported model output {output!r} ({type(output).__name__})")


def normalize_output(output: Any) -> tuple[Value, Mapping[str, float] | None]:
    """``(value, probabilities)`` of one model output; ``TypeError`` if it has no meaning.

    Examples
    --------
    >>> normalize_output(1)
    ('1', None)
    >>> normalize_output(0.25)
    (0.25, None)
    >>> normalize_output({"yes": 0.8, "no": 0.2})
    ('yes', {'yes': 0.8, 'no': 0.2})
    """
    if type(output) is float:  # the common case first
        return output, None
    if isinstance(output, np.ndarray) and output.size == 1:
        output = output.reshape(()).item()
    if isinstance(output, Mapping):
        if "value" in output:
            probabilities = output.get("probabilities")
            value = _label_or_number(output["value"])
            if probabilities is None:
                return value, None
            return value, {str(k): float(v) for k, v in probabilities.items()}
        vector = {str(k): float(v) for k, v in output.items()}
        if not vector:
            raise TypeError("model returned an empty mapping")
        return max(vector, key=vector.__getitem__), vector
    return _label_or_number(output), None


def _detect_kind(model: Any) -> ModelKind:
    if hasattr(model, "predict_outcomes"):
        return "outcomes"
    if hasattr(model, "predict_batch"):
        return "predict_batch"
    if hasattr(model, "predict"):
        is_estimator = hasattr(model, "fit") or hasattr(model, "get_params")
        return "sklearn" if is_estimator else "predict"
    if callable(model):
        return "callable"
    raise TypeError(
        f"{type(model).__name__} object is not a model: it is not callable and has no "
        "predict or predict_batch method"
    )


class ModelAdapter:
    """Calls a candidate model on a batch of inputs, one :class:`Outcome` per input.

    Parameters
    ----------
    model
        A callable, an object with ``predict`` or ``predict_batch``, or a
        scikit-learn-style estimator (see the module docstring).
    features
        Feature names, in column order for estimators; inputs missing one are invalid.
        ``None``: any features for dict-based models, the sorted numeric names of the
        first input for estimators.
    timeout_ms
        Deadline of one model call; ``None`` or ``0`` calls the model directly, in the
        caller's thread.
    threads
        How many threads may run model calls (with a deadline only); a thread stuck in
        a call past its deadline is not replaced until the call returns.
    kind
        Force how the model is called instead of detecting it.

    Examples
    --------
    >>> adapter = ModelAdapter(lambda f: "yes" if f["age"] > 40 else "no")
    >>> [o.value for o in adapter.predict([ModelInput("r1", "churn", 0, {"age": 41.0})])]
    ['yes']
    >>> adapter.kind
    'callable'
    """

    def __init__(
        self,
        model: Any,
        *,
        features: Sequence[str] | None = None,
        timeout_ms: float | None = None,
        threads: int = DEFAULT_THREADS,
        kind: ModelKind | None = None,
    ) -> None:
        self.model = model
        self.kind: ModelKind = kind or _detect_kind(model)
        self.features: tuple[str, ...] | None = tuple(features) if features else None
        self.timeout = timeout_ms / 1000.0 if timeout_ms else None
        # A remote candidate (``predict_outcomes``) keeps its own deadlines and threads.
        remote = self.kind == "outcomes"
        self.pool = (
            CallPool(threads, self.timeout) if self.timeout is not None and not remote else None
        )
        """The threads that run calls under the deadline (None: no deadline)."""
        self._call_one: Callable[[dict[str, Any]], Any] = (
            model.predict if self.kind == "predict" else model
        )
        self._classes: list[str] | None = None

    restarts = 0
    """Model processes replaced (``--isolate process`` only)."""

    @property
    def timeouts(self) -> int:
        """Calls abandoned at their deadline so far."""
        return self.pool.timeouts if self.pool is not None else 0

    @property
    def hung_threads(self) -> int:
        """Threads stuck in a call past its deadline now."""
        return self.pool.hung if self.pool is not None else 0

    @property
    def batched(self) -> bool:
        """Whether the model is called once per batch rather than once per input."""
        return self.kind in ("predict_batch", "sklearn", "outcomes")

    def required_features(self, first: ModelInput) -> tuple[str, ...] | None:
        """The features every input must have; fixed from ``first`` for estimators."""
        if self.kind == "outcomes":
            return tuple(self.model.required_features(first))
        if self.features is None and self.kind == "sklearn":
            self.features = tuple(sorted(first.numeric))
        return self.features

    def predict(self, inputs: Sequence[ModelInput]) -> list[Outcome]:
        """One outcome per input, in order; never raises for a model error.

        An input that found no free thread (all stuck past their deadline) gets an
        error outcome; the worker uses :meth:`score` instead, and holds such inputs.
        """
        return [o or Outcome(error=NO_THREAD) for o in self.score(inputs)]

    def score(self, inputs: Sequence[ModelInput]) -> list[Outcome | None]:
        """One outcome per input, in order, ``None`` for an input that could not run now
        because every thread of the pool is stuck in a call past its deadline."""
        if not inputs:
            return []
        if self.kind == "outcomes":
            return list(self.model.predict_outcomes(inputs))
        if self.batched:
            return self._predict_batched(inputs)
        if self.pool is None:
            return [self._one(record) for record in inputs]
        return self.pool.map(self._one, inputs, lambda _: Outcome(error=TIMEOUT))

    def close(self) -> None:
        """Let the pool's idle threads end."""
        if self.pool is not None:
            self.pool.close()

    # -- per record ------------------------------------------------------------------------
    def _one(self, record: ModelInput) -> Outcome:
        clock, cpu_clock = time.perf_counter, time.thread_time_ns
        started, cpu_started = clock(), cpu_clock()
        try:
            output = self._call_one(record.feature_dict())
            latency, cpu_ms = (clock() - started) * 1000.0, (cpu_clock() - cpu_started) / 1e6
            if type(output) is float:
                return Outcome(output, None, latency, None, cpu_ms)
            value, probabilities = normalize_output(output)
        except Exception as exc:
            cpu_ms = (cpu_clock() - cpu_started) / 1e6
            return Outcome(None, None, (clock() - started) * 1000.0, _error_text(exc), cpu_ms)
        return Outcome(value, probabilities, latency, None, cpu_ms)

    # -- per batch -------------------------------------------------------------------------
    def _predict_batched(self, inputs: Sequence[ModelInput]) -> list[Outcome | None]:
        started = time.perf_counter()
        try:
            if self.pool is None:
                pairs, cpu_ns = self._call_batch_timed(inputs)
            else:
                pairs, cpu_ns = self.pool.call(lambda: self._call_batch_timed(inputs))
        except Timeout:
            return [Outcome(error=TIMEOUT)] * len(inputs)
        except PoolExhausted:
            return [None] * len(inputs)
        except Exception as exc:
            if len(inputs) == 1:
                elapsed = (time.perf_counter() - started) * 1000.0
                return [Outcome(latency_ms=elapsed, error=_error_text(exc))]
            return [outcome for record in inputs for outcome in self._predict_batched([record])]
        share = (time.perf_counter() - started) * 1000.0 / len(inputs)
        cpu_share = cpu_ns / 1e6 / len(inputs)
        return [
            Outcome(value, probabilities, share, None, cpu_share) for value, probabilities in pairs
        ]

    def _call_batch_timed(
        self, inputs: Sequence[ModelInput]
    ) -> tuple[list[tuple[Value, Mapping[str, float] | None]], int]:
        """:meth:`_call_batch` and the CPU time (ns) it took in the thread running it."""
        cpu_started = time.thread_time_ns()
        pairs = self._call_batch(inputs)
        return pairs, time.thread_time_ns() - cpu_started

    def _call_batch(
        self, inputs: Sequence[ModelInput]
    ) -> list[tuple[Value, Mapping[str, float] | None]]:
        if self.kind == "sklearn":
            return self._call_estimator(inputs)
        outputs = list(self.model.predict_batch([features_of(r) for r in inputs]))
        if len(outputs) != len(inputs):
            raise ValueError(
                f"predict_batch returned {len(outputs)} outputs for {len(inputs)} inputs"
            )
        return [normalize_output(output) for output in outputs]

    def _matrix(self, inputs: Sequence[ModelInput]) -> np.ndarray[Any, Any]:
        columns = self.required_features(inputs[0]) or ()
        rows = []
        numeric_only = True
        for record in inputs:
            numeric, categorical = record.numeric, record.categorical
            row: list[Any] = []
            for name in columns:
                if name in numeric:
                    row.append(numeric[name])
                else:
                    row.append(categorical[name])  # KeyError names the missing feature
                    numeric_only = False
            rows.append(row)
        return np.asarray(rows, dtype=np.float64 if numeric_only else object)

    def _call_estimator(
        self, inputs: Sequence[ModelInput]
    ) -> list[tuple[Value, Mapping[str, float] | None]]:
        matrix = self._matrix(inputs)
        predicted = np.asarray(self.model.predict(matrix))
        if predicted.shape[:1] != (len(inputs),):
            raise ValueError(f"predict returned shape {predicted.shape} for {len(inputs)} inputs")
        classes = getattr(self.model, "classes_", None)
        if classes is None:
            return [(_label_or_number(v), None) for v in predicted.tolist()]
        labels = [str(v) for v in predicted.tolist()]
        if not hasattr(self.model, "predict_proba"):
            return [(label, None) for label in labels]
        if self._classes is None:
            self._classes = [str(c) for c in np.asarray(classes).tolist()]
        matrix_p = np.asarray(self.model.predict_proba(matrix), dtype=np.float64)
        names = self._classes
        return [
            (label, dict(zip(names, row, strict=True)))
            for label, row in zip(labels, matrix_p.tolist(), strict=True)
        ]
