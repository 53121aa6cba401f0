"""A micro-batch the worker holds while every model thread is stuck past its deadline.

The worker stops taking inputs (its partitions paused) and retries the unscored inputs
of the held batch on every turn of its loop; once a thread is free again and they all
have an outcome, the batch goes out as any other and consumption resumes. Nothing is
lost (the held batch's offsets are committed only after it is delivered) and nothing is
scored twice (the inputs already scored keep their outcomes).
"""

from __future__ import annotations

from collections.abc import Iterable

from streams.worker.batch import Batch
from streams.worker.model import ModelAdapter, Outcome

__all__ = ["HeldBatch"]


class HeldBatch:
    """``batch`` with its outcomes so far (``None``: not scored yet).

    Examples
    --------
    >>> from streams.records import ModelInput
    >>> batch = Batch(inputs=[ModelInput("r1", "churn", 0, {"age": 41.0})])
    >>> held = HeldBatch(batch, [None], started=0.0)
    >>> held.unscored, held.retry(ModelAdapter(lambda f: 1.0)), held.outcomes[0].value
    (1, True, 1.0)
    """

    __slots__ = ("batch", "outcomes", "started")

    def __init__(self, batch: Batch, outcomes: list[Outcome | None], started: float) -> None:
        self.batch = batch
        self.outcomes = outcomes
        self.started = started
        """When the batch was consumed (``time.perf_counter``), for the batch latency."""

    @property
    def unscored(self) -> int:
        return sum(outcome is None for outcome in self.outcomes)

    def retry(self, adapter: ModelAdapter) -> bool:
        """Score the inputs still without an outcome; True when none is left."""
        missing = [i for i, outcome in enumerate(self.outcomes) if outcome is None]
        if not missing:
            return True
        scored = adapter.score([self.batch.inputs[i] for i in missing])
        for index, outcome in zip(missing, scored, strict=True):
            self.outcomes[index] = outcome
        return all(outcome is not None for outcome in scored)

    def forget(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Commit nothing for partitions taken away meanwhile (their new owner re-reads)."""
        for key in partitions:
            self.batch.next_offsets.pop(key, None)

    def done(self) -> list[Outcome]:
        """The outcomes, once :meth:`retry` returned True."""
        outcomes = [outcome for outcome in self.outcomes if outcome is not None]
        assert len(outcomes) == len(self.outcomes), "held batch taken before it was scored"
        return outcomes
