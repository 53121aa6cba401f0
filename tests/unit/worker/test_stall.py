"""The worker loop when every model thread is stuck: it holds, pauses, says so, resumes."""

from __future__ import annotations

import threading
import time
from typing import Any

from streams.codec import Codec
from streams.records import Prediction
from streams.worker import ModelAdapter
from streams.worker.metrics import WorkerCollector
from tests.unit.worker.test_loop import TOPICS, _broker, _run

HANGS = {"r3", "r4", "r10", "r11", "r30", "r31"}
"""Inputs on which the model hangs until released: two of them use up both threads."""


def test_a_stalled_worker_takes_no_inputs_then_finishes_every_one_exactly_once() -> None:
    broker = _broker(60)
    release = threading.Event()
    seen: list[str] = []

    def model(features: dict[str, Any]) -> float:
        if f"r{features['age']:.0f}" in HANGS:
            release.wait()
        return features["age"]

    # Long enough that no call but a hung one runs out of time on a loaded machine.
    adapter = ModelAdapter(model, timeout_ms=500, threads=2)

    def until(worker: Any) -> bool:
        if worker.metrics.stalled and not release.is_set():
            seen.append(worker.metrics.status_line())
            consumed = worker.metrics.consumed
            time.sleep(0.2)  # stalled: nothing more is consumed meanwhile
            assert worker.metrics.consumed == consumed and worker.metrics.stalled
            families = {f.name: f for f in WorkerCollector(worker.metrics).collect()}
            assert families["shadow_worker_stalled"].samples[0].value == 1
            release.set()
        return bool(worker.metrics.produced >= 60)

    try:
        worker, _, failure = _run(broker, adapter, until)
    finally:
        release.set()
        adapter.close()
    assert failure is None and seen and "STALLED" in seen[0] and "hung=2/2" in seen[0]
    codec = Codec()
    predictions = [codec.decode(v) for _, v in broker.records(TOPICS.shadow_predictions)]
    by_id: dict[str, Prediction] = {}
    for p in predictions:
        assert isinstance(p, Prediction) and p.request_id not in by_id
        by_id[p.request_id] = p
    assert len(by_id) == 60
    # Two hangs took both threads; the input held meanwhile ran once one was free.
    timeouts = {r for r, p in by_id.items() if p.error == "timeout"}
    assert len(timeouts) == 2 < len(HANGS) and timeouts < HANGS
    assert worker.metrics.timeouts == 2 and worker.metrics.errors == 2
    assert all(p.value == float(r[1:]) for r, p in by_id.items() if p.error is None)
    assert worker.metrics.stalled == 0 and worker.metrics.consumed == 60
