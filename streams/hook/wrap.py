"""Timing a live prediction: the ``track()`` context manager and the ``shadow_predict`` decorator.

An exception from the model is recorded (a live prediction with ``error="Type: message"``
and no value) and then re-raised to the app unchanged; it is never swallowed.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ParamSpec, Protocol, TypeVar, cast

from streams.hook.ids import uuid7

__all__ = ["Publishing", "Tracked", "current_request_id", "error_text", "shadow_predict"]

P = ParamSpec("P")
R = TypeVar("R")

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "shadow_request_id", default=None
)


class Publishing(Protocol):
    """What timing needs of a publisher (:class:`streams.hook.ShadowPublisher` is one).

    This module depends on this small interface, not on the publisher, so the publisher
    can import :class:`Tracked` without an import cycle.
    """

    def publish(
        self,
        features: Mapping[str, Any] | None = None,
        prediction: Any = None,
        *,
        request_id: str | None = None,
        model: str | None = None,
        version: str | None = None,
        probabilities: Mapping[Any, float] | None = None,
        latency_ms: float = 0.0,
        error: str | None = None,
        segments: Mapping[str, Any] | None = None,
        cpu_ms: float | None = None,
    ) -> str:
        """Publish one request's inputs and live prediction; never raises."""
        ...

    @property
    def measure_cost(self) -> bool:
        """Whether timing also measures the thread CPU time of each prediction."""
        ...

    def record_error(self, where: str, exc: BaseException) -> None:
        """Count and log an unexpected error in hook code (here: a user's extractor)."""
        ...


def current_request_id() -> str | None:
    """The request id of the latest tracked prediction in this context (thread or task).

    Examples
    --------
    >>> current_request_id() is None or isinstance(current_request_id(), str)
    True
    """
    return _current.get()


def error_text(exc: BaseException) -> str:
    """``"Type: message"``, as a failed live prediction records it.

    Examples
    --------
    >>> error_text(ValueError("bad input"))
    'ValueError: bad input'
    """
    return f"{type(exc).__name__}: {exc}"


class Tracked:
    """One prediction being timed; set :attr:`prediction` inside the ``with`` block.

    On leaving the block the input and the live prediction (or the error) are published
    with the measured latency, and the thread CPU time the block took when the publisher
    measures CPU (``measure_cost=True``; an ``async`` block shares its thread with other
    tasks, so ``shadow_predict`` does not measure those). The request id exists from the
    start, so the app can return it to its client or store it to label the request later.

    Examples
    --------
    >>> from streams.settings import Settings
    >>> from streams.hook import ShadowPublisher
    >>> publisher = ShadowPublisher(Settings(), model="churn", version="v1")  # doctest: +SKIP
    >>> with publisher.track({"age": 41}) as t:  # doctest: +SKIP
    ...     t.prediction = 0.83
    ...     t.probabilities = None
    >>> t.request_id  # doctest: +SKIP
    '0192...'
    """

    __slots__ = (
        "_cpu_start_ns",
        "_publisher",
        "_start_ns",
        "cpu_ms",
        "features",
        "latency_ms",
        "model",
        "prediction",
        "probabilities",
        "request_id",
        "segments",
        "version",
    )

    def __init__(
        self,
        publisher: Publishing,
        features: Mapping[str, Any] | None = None,
        *,
        request_id: str | None = None,
        model: str | None = None,
        version: str | None = None,
        segments: Mapping[str, Any] | None = None,
        measure_cost: bool | None = None,
    ) -> None:
        self._publisher = publisher
        self.features = features
        self.request_id = request_id if request_id is not None else uuid7()
        self.model = model
        self.version = version
        self.segments = segments
        self.prediction: Any = None
        self.probabilities: Mapping[Any, float] | None = None
        self.latency_ms = 0.0
        self.cpu_ms: float | None = None
        self._start_ns = 0
        measure = publisher.measure_cost if measure_cost is None else measure_cost
        self._cpu_start_ns = 0 if measure else -1

    def __enter__(self) -> Tracked:
        _current.set(self.request_id)
        if self._cpu_start_ns >= 0:
            self._cpu_start_ns = time.thread_time_ns()
        self._start_ns = time.perf_counter_ns()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.latency_ms = (time.perf_counter_ns() - self._start_ns) / 1e6
        if self._cpu_start_ns >= 0:
            self.cpu_ms = (time.thread_time_ns() - self._cpu_start_ns) / 1e6
        self._publisher.publish(
            self.features,
            None if exc is not None else self.prediction,
            request_id=self.request_id,
            model=self.model,
            version=self.version,
            probabilities=None if exc is not None else self.probabilities,
            latency_ms=self.latency_ms,
            error=None if exc is None else error_text(exc),
            segments=self.segments,
            cpu_ms=self.cpu_ms,
        )
        # Returning None lets the exception, if any, propagate unchanged.


def _default_features(*args: Any, **kwargs: Any) -> Mapping[str, Any] | None:
    """The first argument (or ``features=``) when it is a mapping."""
    candidate = args[0] if args else kwargs.get("features")
    return candidate if isinstance(candidate, Mapping) else None


def _guarded(publisher: Publishing, what: str, func: Callable[[], Any]) -> Any:
    try:
        return func()
    except Exception as exc:
        publisher.record_error(what, exc)
        return None


@dataclass(frozen=True, slots=True)
class _Options:
    publisher: Publishing
    features: Callable[..., Mapping[str, Any] | None]
    model: str | None
    version: str | None
    outputs: Callable[[Any], Any] | None
    segments: Mapping[str, Any] | Callable[..., Mapping[str, Any] | None] | None
    request_id: Callable[..., str | None] | None

    def start(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], *, is_async: bool = False
    ) -> Tracked:
        p = self.publisher
        features = _guarded(p, "features extractor", lambda: self.features(*args, **kwargs))
        segments = self.segments
        if callable(segments):
            tags = segments
            segments = _guarded(p, "segments extractor", lambda: tags(*args, **kwargs))
        rid = None
        extract_id = self.request_id
        if extract_id is not None:
            rid = _guarded(p, "request_id extractor", lambda: extract_id(*args, **kwargs))
        return Tracked(
            p,
            features,
            request_id=rid,
            model=self.model,
            version=self.version,
            segments=segments,
            measure_cost=False if is_async else None,  # other tasks run on the thread too
        )

    def finish(self, tracked: Tracked, output: Any) -> None:
        if self.outputs is None:
            tracked.prediction = output
            return
        outputs = self.outputs
        found = _guarded(self.publisher, "outputs extractor", lambda: outputs(output))
        if isinstance(found, tuple) and len(found) == 2:
            tracked.prediction, tracked.probabilities = found
        else:
            tracked.prediction = found


def shadow_predict(
    publisher: Publishing,
    *,
    model: str | None = None,
    version: str | None = None,
    features: Callable[..., Mapping[str, Any] | None] | None = None,
    outputs: Callable[[Any], Any] | None = None,
    segments: Mapping[str, Any] | Callable[..., Mapping[str, Any] | None] | None = None,
    request_id: Callable[..., str | None] | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a predict function (sync or ``async``) so every call is published.

    Parameters
    ----------
    publisher
        Where the records go.
    model, version
        Override the publisher's defaults.
    features
        Called with the function's arguments, returns the features mapping; by default the
        first argument (or ``features=``) if it is a mapping.
    outputs
        Called with the return value, returns the prediction, or a ``(prediction,
        probabilities)`` pair; by default the return value is the prediction.
    segments
        Segment tags, or a callable on the function's arguments that returns them.
    request_id
        Called with the function's arguments, returns the request id (``None``: make one).
        The id used is available afterwards from :func:`current_request_id`.

    The function's return value and exceptions reach the caller unchanged; an exception
    is published as a failed live prediction first.

    Examples
    --------
    >>> from streams.hook import ShadowPublisher
    >>> publisher = ShadowPublisher(model="churn", version="v1")  # doctest: +SKIP
    >>> @shadow_predict(publisher, outputs=lambda p: (p["label"], p["proba"]))  # doctest: +SKIP
    ... def predict(features):
    ...     return {"label": "stay", "proba": {"stay": 0.8, "churn": 0.2}}
    """
    options = _Options(
        publisher,
        features=features or _default_features,
        model=model,
        version=version,
        outputs=outputs,
        segments=segments,
        request_id=request_id,
    )

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                tracked = options.start(args, kwargs, is_async=True)
                with tracked:
                    output = await func(*args, **kwargs)
                    options.finish(tracked, output)
                return output

            return cast(Callable[P, R], async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            tracked = options.start(args, kwargs)
            with tracked:
                output = func(*args, **kwargs)
                options.finish(tracked, output)
            return output

        return wrapper

    return decorate
