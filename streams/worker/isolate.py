"""``--isolate process``: the candidate model runs in a child process the worker can kill.

A thread stuck in a model call cannot be stopped; a process can. :class:`IsolatedModel`
sends each micro-batch's inputs to a child process that loads the model itself (from the
same ``--model`` spec or ``--model-file``) and answers input by input (a batch model: once
for the batch). The worker keeps every input until its outcome is back, so when a call
misses its deadline, or the child dies (a crash, the OOM killer), it kills the child,
gives that input a ``timeout`` (or error) outcome, starts a fresh child and sends it the
inputs not answered yet: nothing is lost, nothing is scored twice. A model that leaks
memory or hangs is recycled instead of taking the worker down.

Children are forked from a fork server (``multiprocessing``'s ``forkserver``, with the
model's module preloaded), never from the worker itself, whose Kafka clients run threads:
a restart costs a fork and the model's construction, not an interpreter start.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from streams.records import ModelInput
from streams.worker.model import TIMEOUT, ModelAdapter, Outcome

__all__ = ["IsolatedModel", "ModelSource"]

_START_TIMEOUT_S = 120.0
"""How long a new child may take to load the model before the worker gives up."""


@dataclass(frozen=True, slots=True)
class ModelSource:
    """Where a child process loads the model from: a ``MODULE:ATTRIBUTE`` spec or a file."""

    spec: str | None = None
    path: str | None = None
    features: tuple[str, ...] | None = None

    def load(self) -> ModelAdapter:
        from streams.worker.loading import load_model, load_model_file

        model = load_model(self.spec) if self.spec else load_model_file(Path(self.path or ""))
        return ModelAdapter(model, features=self.features)

    @property
    def module(self) -> str | None:
        return self.spec.partition(":")[0] if self.spec else None


def _serve(source: ModelSource, conn: Connection) -> None:
    """The child: load the model, then answer each batch of inputs until told to stop."""
    try:
        adapter = source.load()
    except BaseException as exc:  # reported to the parent, which names it
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", adapter.kind))
    while True:
        inputs: list[ModelInput] | None = conn.recv()
        if inputs is None:
            return
        if adapter.batched:
            conn.send(adapter.predict(inputs))
        else:
            for record in inputs:  # one answer per input: the parent times each call
                conn.send(adapter.predict([record])[0])


class _Child:
    __slots__ = ("conn", "process")

    def __init__(self, source: ModelSource) -> None:
        context = multiprocessing.get_context("forkserver")
        preload = ["streams.worker.isolate"] + ([source.module] if source.module else [])
        context.set_forkserver_preload(preload)
        self.conn, theirs = context.Pipe()
        self.process = context.Process(
            target=_serve, args=(source, theirs), name="shadow-model", daemon=True
        )
        self.process.start()
        theirs.close()
        if not self.conn.poll(_START_TIMEOUT_S):
            self.kill()
            raise RuntimeError(f"the model process did not start within {_START_TIMEOUT_S:.0f}s")
        try:
            state, detail = self.conn.recv()
        except (EOFError, OSError):
            state, detail = "failed", f"it exited (code {self.process.exitcode}) while loading"
        if state != "ready":
            self.kill()
            raise RuntimeError(f"the model process cannot load the model: {detail}")

    def kill(self) -> None:
        self.process.kill()
        self.process.join(5)
        self.conn.close()


class _Task:
    """The chunk of a batch one child is answering, and when its current call started."""

    __slots__ = ("chunk", "got", "started")

    def __init__(self, chunk: list[int]) -> None:
        self.chunk = chunk
        self.got = 0
        self.started = time.perf_counter()


class IsolatedModel(ModelAdapter):
    """A :class:`ModelAdapter` whose calls run in child processes, killed when late.

    Parameters
    ----------
    model
        The model as loaded in the worker (to know how it is called and its features);
        each child loads its own copy from ``source``.
    source
        Where the children load the model from.
    timeout_ms
        Deadline of one call (a batch model's: of one batch).
    processes
        How many children score a micro-batch at once (contiguous chunks of it).

    Examples
    --------
    >>> from streams.records import ModelInput
    >>> isolated = IsolatedModel(abs, ModelSource(spec="builtins:abs"), timeout_ms=5000)
    ... # doctest: +SKIP
    >>> isolated.predict([ModelInput("r1", "m", 0, {"x": -2.0})])  # doctest: +SKIP
    """

    def __init__(
        self,
        model: Any,
        source: ModelSource,
        *,
        timeout_ms: float,
        processes: int = 1,
        features: Sequence[str] | None = None,
    ) -> None:
        super().__init__(model, features=features)
        if processes < 1:
            raise ValueError(f"processes must be at least 1, got {processes}")
        self.source = source
        self.call_timeout = timeout_ms / 1000.0
        self.processes = processes
        self.restarts = 0
        """Children killed and replaced (late or dead)."""
        self.late = 0
        self._children: list[_Child | None] = [None] * processes

    @property
    def timeouts(self) -> int:
        return self.late

    @property
    def hung_threads(self) -> int:
        return 0  # a late call's process is killed, not left hanging

    def _child(self, slot: int) -> _Child:
        child = self._children[slot]
        if child is None:
            child = self._children[slot] = _Child(self.source)
        return child

    def _recycle(self, slot: int) -> None:
        child, self._children[slot] = self._children[slot], None
        if child is not None:
            child.kill()
        self.restarts += 1

    def score(self, inputs: Sequence[ModelInput]) -> list[Outcome | None]:
        """One outcome per input (never ``None``: a late child is replaced, not waited for)."""
        outcomes: list[Outcome | None] = [None] * len(inputs)
        size = -(-len(inputs) // self.processes)
        pending = [
            list(range(at, min(at + size, len(inputs)))) for at in range(0, len(inputs), size)
        ]
        running: dict[int, _Task] = {}
        while pending or running:
            for slot in range(self.processes):
                if pending and slot not in running:
                    chunk = pending.pop(0)
                    self._child(slot).conn.send([inputs[i] for i in chunk])
                    running[slot] = _Task(chunk)
            earliest = min(task.started for task in running.values()) + self.call_timeout
            by_conn = {self._child(slot).conn: slot for slot in running}
            ready = wait(list(by_conn), max(earliest - time.perf_counter(), 0.0))
            for conn in ready:
                slot = by_conn[conn]  # type: ignore[index]
                self._receive(slot, running, outcomes, pending)
            now = time.perf_counter()
            for slot, task in list(running.items()):
                if now - task.started >= self.call_timeout:
                    self.late += 1
                    self._fail(slot, running, outcomes, pending, TIMEOUT)
        return outcomes

    def _receive(
        self,
        slot: int,
        running: dict[int, _Task],
        outcomes: list[Outcome | None],
        pending: list[list[int]],
    ) -> None:
        task = running[slot]
        child = self._child(slot)
        try:
            answer = child.conn.recv()
        except (EOFError, OSError):  # the child died in the call
            child.process.join(1)
            error = f"model process died (exit code {child.process.exitcode})"
            self._fail(slot, running, outcomes, pending, error)
            return
        if self.batched:
            for index, outcome in zip(task.chunk, answer, strict=True):
                outcomes[index] = outcome
            task.got = len(task.chunk)
        else:
            outcomes[task.chunk[task.got]] = answer
            task.got += 1
            task.started = time.perf_counter()
        if task.got == len(task.chunk):
            del running[slot]

    def _fail(
        self,
        slot: int,
        running: dict[int, _Task],
        outcomes: list[Outcome | None],
        pending: list[list[int]],
        error: str,
    ) -> None:
        """The call now running in ``slot`` gets ``error`` (a batch call: all its inputs);
        the child is replaced and the inputs after the call go back to the queue."""
        task = running.pop(slot)
        self._recycle(slot)
        failed = task.chunk[task.got :] if self.batched else [task.chunk[task.got]]
        for index in failed:
            outcomes[index] = Outcome(error=error)
        rest = task.chunk[task.got + len(failed) :]
        if rest:
            pending.insert(0, rest)

    def close(self) -> None:
        """Stop the child processes."""
        children, self._children = self._children, [None] * self.processes
        for child in children:
            if child is None:
                continue
            with contextlib.suppress(OSError):
                child.conn.send(None)
            child.process.join(1)
            if child.process.is_alive():
                child.kill()
