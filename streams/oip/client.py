"""A candidate served by a model server over the Open Inference Protocol's REST API.

:class:`OIPCandidate` is a model the worker scores like any other (it returns one
:class:`~streams.worker.model.Outcome` per input), but the work happens on a server
(MLServer, KServe, Triton): each micro-batch of the worker is cut into requests of
``batch_size`` rows, sent ``concurrency`` at a time over one pooled ``httpx.Client``.

Per call: a deadline (``timeout_ms``) over all of its attempts; retries with exponential
backoff and jitter on connection errors and on 429/502/503/504; a ``400``/``422`` for a
request of several rows is split in halves until the bad rows are found, so one bad input
does not fail its neighbours. Whatever still fails becomes an error outcome of each input
of that call: the worker publishes error predictions, never drops an input, and goes on
(a server that comes back is used again at the next call).

At start, :meth:`OIPCandidate.wait_ready` polls ``/v2/health/ready`` and the model's
``/ready`` and raises :class:`OIPNotReady` with the last answer when they stay down.
"""

from __future__ import annotations

import itertools
import logging
import random
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from streams.oip.tensors import OIPResponseError, build_request, parse_values
from streams.records import ModelInput
from streams.worker.model import TIMEOUT, Outcome

__all__ = ["OIPCandidate", "OIPNotReady", "OIPOptions"]

log = logging.getLogger("streams.oip")
RETRY_STATUS = frozenset({429, 502, 503, 504})
SPLIT_STATUS = frozenset({400, 422})
MAX_BACKOFF_S = 2.0
MAX_REASON_CHARS = 300


class OIPNotReady(RuntimeError):
    """The server or the model did not answer ready in time; the message says which."""


@dataclass(frozen=True, slots=True)
class OIPOptions:
    """Where the candidate is served and how it is called.

    ``features``: the model's columns in order (``None``: the sorted numeric feature names
    of the first input, as for in-process estimators). ``timeout_ms``: the deadline of one
    call, all its attempts included.
    """

    url: str
    model: str
    version: str | None = None
    features: tuple[str, ...] | None = None
    batch_size: int = 64
    concurrency: int = 4
    timeout_ms: float = 5000.0
    retries: int = 3
    backoff_ms: float = 50.0

    @property
    def model_path(self) -> str:
        base = f"/v2/models/{self.model}"
        return f"{base}/versions/{self.version}" if self.version else base


def _error_text(response: httpx.Response) -> str:
    try:
        detail = response.json().get("error", response.text)
    except ValueError:
        detail = response.text
    return f"HTTP {response.status_code}: {str(detail)[:MAX_REASON_CHARS]}"


class OIPCandidate:
    """A model behind an Open Inference Protocol REST endpoint.

    Parameters
    ----------
    options
        URL, model name and version, batching, deadline and retries.
    transport
        An ``httpx`` transport instead of the network (``httpx.MockTransport`` in unit
        tests).

    Examples
    --------
    >>> import httpx
    >>> def server(request):
    ...     rows = len(json.loads(request.content)["inputs"][0]["data"])
    ...     return httpx.Response(200, json={"outputs": [
    ...         {"name": "predict", "shape": [rows], "datatype": "INT64", "data": [1] * rows}]})
    >>> import json
    >>> candidate = OIPCandidate(OIPOptions("http://mlserver", "iris", features=("x",)),
    ...                          transport=httpx.MockTransport(server))
    >>> [o.value for o in candidate.predict_outcomes([ModelInput("r1", "iris", 0, {"x": 1.0})])]
    ['1']
    >>> candidate.close()
    """

    def __init__(
        self, options: OIPOptions, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.options = options
        self.features = options.features
        limits = httpx.Limits(max_connections=options.concurrency)
        self._client = httpx.Client(base_url=options.url, limits=limits, transport=transport)
        self._pool = ThreadPoolExecutor(options.concurrency, thread_name_prefix="oip")
        self._ids = itertools.count()
        self._prefix = uuid.uuid4().hex[:8]
        self._down: str | None = None

    # -- the worker's model interface ------------------------------------------------------
    def required_features(self, first: ModelInput) -> tuple[str, ...]:
        """The columns every input must have; fixed from ``first`` when not configured."""
        if self.features is None:
            self.features = tuple(sorted(first.numeric))
        return self.features

    def predict_outcomes(self, inputs: Sequence[ModelInput]) -> list[Outcome]:
        """One outcome per input, in order; never raises for a server error."""
        if not inputs:
            return []
        self.required_features(inputs[0])
        size = self.options.batch_size
        chunks = [inputs[i : i + size] for i in range(0, len(inputs), size)]
        if len(chunks) == 1:
            return self._call(chunks[0])
        return [outcome for part in self._pool.map(self._call, chunks) for outcome in part]

    def close(self) -> None:
        """Close the connections and the call threads."""
        self._pool.shutdown(wait=True)
        self._client.close()

    # -- readiness -------------------------------------------------------------------------
    def not_ready_reason(self) -> str | None:
        """``None`` when server and model answer ready, else what answered otherwise."""
        for path in ("/v2/health/ready", f"{self.options.model_path}/ready"):
            try:
                response = self._client.get(path, timeout=self.options.timeout_ms / 1000.0)
            except httpx.HTTPError as exc:
                return f"GET {path}: {type(exc).__name__}: {exc}"
            if response.status_code != 200:
                return f"GET {path} answered {_error_text(response)}"
        return None

    def wait_ready(self, timeout_s: float) -> None:
        """Return once server and model are ready; :class:`OIPNotReady` after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            reason = self.not_ready_reason()
            if reason is None:
                return
            if time.monotonic() >= deadline:
                raise OIPNotReady(
                    f"model {self.options.model!r} at {self.options.url} is not ready "
                    f"after {timeout_s:g} s: {reason}"
                )
            time.sleep(min(0.5, max(deadline - time.monotonic(), 0.0)))

    # -- one call --------------------------------------------------------------------------
    def _call(self, rows: Sequence[ModelInput]) -> list[Outcome]:
        deadline = time.monotonic() + self.options.timeout_ms / 1000.0
        return self._call_until(rows, deadline)

    def _call_until(self, rows: Sequence[ModelInput], deadline: float) -> list[Outcome]:
        assert self.features is not None
        request = build_request(rows, self.features, f"{self._prefix}-{next(self._ids)}")
        outcomes = [Outcome(error=reason) for reason in request.refused.values()]
        by_position: dict[int, Outcome] = dict(zip(request.refused, outcomes, strict=True))
        if request.sent:
            sent_rows = [rows[p] for p in request.sent]
            answers = self._send(sent_rows, request.body, deadline)
            by_position.update(zip(request.sent, answers, strict=True))
        return [by_position[p] for p in range(len(rows))]

    def _send(
        self, rows: Sequence[ModelInput], body: dict[str, Any], deadline: float
    ) -> list[Outcome]:
        options = self.options
        path = f"{options.model_path}/infer"
        started = time.perf_counter()
        reason = TIMEOUT
        for attempt in range(options.retries + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                reason = TIMEOUT
                break
            try:
                response = self._client.post(path, json=body, timeout=remaining)
            except httpx.TimeoutException:
                reason = TIMEOUT
                break
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__}: {str(exc)[:MAX_REASON_CHARS]}"
            else:
                if response.status_code == 200:
                    return self._answers(rows, response, started)
                reason = _error_text(response)
                if response.status_code in SPLIT_STATUS and len(rows) > 1:
                    return self._split(rows, deadline)
                if response.status_code not in RETRY_STATUS:
                    break
            if attempt < options.retries:
                pause = options.backoff_ms / 1000.0 * 2**attempt * (0.5 + random.random())
                time.sleep(max(min(pause, MAX_BACKOFF_S, deadline - time.monotonic()), 0.0))
        self._note_down(reason)
        elapsed = (time.perf_counter() - started) * 1000.0
        error = reason if reason == TIMEOUT else f"oip: {reason}"
        return [Outcome(latency_ms=elapsed, error=error)] * len(rows)

    def _answers(
        self, rows: Sequence[ModelInput], response: httpx.Response, started: float
    ) -> list[Outcome]:
        share = (time.perf_counter() - started) * 1000.0 / len(rows)
        try:
            values = parse_values(response.json(), len(rows))
        except (OIPResponseError, ValueError) as exc:
            return [Outcome(latency_ms=share, error=f"oip: {exc}")] * len(rows)
        self._note_up()
        return [Outcome(value, None, share) for value in values]

    def _split(self, rows: Sequence[ModelInput], deadline: float) -> list[Outcome]:
        half = len(rows) // 2
        return self._call_until(rows[:half], deadline) + self._call_until(rows[half:], deadline)

    def _note_down(self, reason: str) -> None:
        if self._down is None:
            log.warning("calls to %s fail: %s", self.options.url, reason)
        self._down = reason

    def _note_up(self) -> None:
        if self._down is not None:
            log.warning("calls to %s succeed again", self.options.url)
            self._down = None
