"""A model that hangs forever on 1% of its inputs: the worker's bounded user code.

Scores N inputs (default 10,000, in the worker's micro-batches of 500) with a healthy
model taking about 5 ms per call (waiting, as on a GPU or a remote server), then with the
same model hanging forever on every input whose ``x % 100 == 7``, both with ``--isolate
process`` (a late call's child process is killed and replaced) on 4 child processes
(``--processes``) and a deadline of ``--timeout-ms`` (200). Also runs the hanging model on
the thread pool (``--threads 4``) to show that it stays bounded: its four threads get
stuck and the worker stalls instead of leaking a thread per hang. Prints ONE JSON object:

* ``throughput_ratio``: inputs per second on the non-hanging inputs of the hanging run
  over the healthy run's (same mode, same run): must stay above 0.5;
* ``hung_inputs`` / ``timeouts``: every hanging input is a ``timeout`` prediction, and
  ``wrong_outputs`` counts the other inputs whose prediction is not exactly 2x;
* ``max_threads`` / ``baseline_threads``: the process's threads while scoring, against
  before (constant: no thread per hang), ``model_restarts``;
* ``thread_pool``: the same model on 4 threads with no child process: threads stay at
  4 plus the baseline, and the run stalls after 4 hangs (``stalled_after``).

Usage: ``python bench/hung_model.py --json [--inputs 10000] [--timeout-ms 50]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streams.records import ModelInput
from streams.worker import ModelAdapter
from streams.worker.isolate import IsolatedModel, ModelSource
from tests.unit.worker import hanging_models

BATCH = 500
MODELS = "tests.unit.worker.hanging_models"


def _inputs(n: int) -> list[ModelInput]:
    return [ModelInput(f"r{i}", "m", 0, {"x": float(i)}) for i in range(n)]


def _run(adapter: ModelAdapter, inputs: list[ModelInput], hangs: bool) -> dict[str, object]:
    baseline = threading.active_count()
    most = baseline
    started = time.perf_counter()
    outcomes = []
    for at in range(0, len(inputs), BATCH):
        outcomes += adapter.predict(inputs[at : at + BATCH])
        most = max(most, threading.active_count())
    seconds = time.perf_counter() - started
    hung = [i for i in range(len(inputs)) if hangs and i % 100 == 7]
    timeouts = [i for i, o in enumerate(outcomes) if o.error == "timeout"]
    wrong = sum(1 for i, o in enumerate(outcomes) if i % 100 != 7 and o.value != 2.0 * i)
    return {
        "seconds": round(seconds, 3),
        "scored_per_s": round((len(inputs) - len(timeouts)) / seconds, 1),
        "hung_inputs": len(hung),
        "timeouts": len(timeouts),
        "timeouts_are_the_hung_inputs": timeouts == hung,
        "wrong_outputs": wrong,
        "baseline_threads": baseline,
        "max_threads": most,
        "model_restarts": adapter.restarts,
    }


def _thread_pool(inputs: list[ModelInput], timeout_ms: float) -> dict[str, object]:
    baseline = threading.active_count()
    adapter = ModelAdapter(hanging_models.hang_on_sevens, timeout_ms=timeout_ms, threads=4)
    scored = stalled_after = 0
    most = baseline
    for at in range(0, len(inputs), BATCH):
        outcomes = adapter.score(inputs[at : at + BATCH])
        most = max(most, threading.active_count())
        scored += sum(o is not None for o in outcomes)
        if any(o is None for o in outcomes):
            stalled_after = scored
            break
    return {
        "threads": 4,
        "baseline_threads": baseline,
        "max_threads": most,
        "timeouts": adapter.timeouts,
        "hung_threads": adapter.hung_threads,
        "stalled_after": stalled_after,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object (default)")
    ap.add_argument("--inputs", type=int, default=10_000)
    ap.add_argument("--timeout-ms", type=float, default=200.0)
    ap.add_argument("--processes", type=int, default=4)
    args = ap.parse_args(argv)
    inputs = _inputs(args.inputs)
    runs = {}
    for name in ("slow", "slow_hang_on_sevens"):
        source = ModelSource(spec=f"{MODELS}:{name}")
        model = getattr(hanging_models, name)
        adapter = IsolatedModel(model, source, timeout_ms=args.timeout_ms, processes=args.processes)
        adapter.predict(inputs[:1])  # the child is up: its start is not timed
        adapter.restarts = 0
        try:
            runs[name] = _run(adapter, inputs, hangs="hang" in name)
        finally:
            adapter.close()
    healthy, hanging = runs["slow"], runs["slow_hang_on_sevens"]
    ratio = float(hanging["scored_per_s"]) / float(healthy["scored_per_s"])  # type: ignore[arg-type]
    report = {
        "inputs": args.inputs,
        "timeout_ms": args.timeout_ms,
        "isolate": "process",
        "processes": args.processes,
        "throughput_ratio": round(ratio, 3),
        "healthy": healthy,
        "hanging": hanging,
        "thread_pool": _thread_pool(inputs, args.timeout_ms),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
