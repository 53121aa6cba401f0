"""The demo's pure parts: data, models, request stream, experiments file, label feeder."""

from __future__ import annotations

import doctest
import importlib
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from streams.demo.experiments import CPU_MARGIN, delivery_experiment_toml, experiments_toml
from streams.demo.models import DemoModel, load_data, train_models
from streams.demo.serving import DeliveryApp, LabelFeeder
from streams.demo.traffic import COUNTRIES, deliveries, requests
from streams.downstream.delivery import train_eta_models
from streams.join.experiments import ExperimentsFile
from streams.records import ModelInput
from streams.worker.loading import load_model_file
from streams.worker.model import ModelAdapter

MODULES = [
    "streams.demo.models",
    "streams.demo.traffic",
    "streams.demo.experiments",
    "streams.demo.processes",
    "streams.replay.traffic",
    "streams.replay.run",
    "streams.report.model",
    "streams.report.summary",
    "streams.report.html",
    "streams.status",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_candidates_are_better_and_worse_than_live_on_held_out_data() -> None:
    data = load_data()
    models = train_models(data)
    stream = list(requests(data, 600, seed=3))

    def accuracy(model_index: int) -> float:
        model = models[model_index]
        return sum(model.predict_one(r.features)[0] == r.label for r in stream) / len(stream)

    assert accuracy(1) > accuracy(0) + 0.03
    assert accuracy(2) < accuracy(0) - 0.05
    assert accuracy(3) > accuracy(0) + 0.03  # the costly candidate is better too


def test_costly_candidate_needs_many_times_live_cpu_per_request() -> None:
    data = load_data()
    live, _, _, costly = train_models(data)
    stream = list(requests(data, 200, seed=3))

    def cpu_s(model: DemoModel) -> float:
        started = time.thread_time()
        for request in stream:
            model.predict_one(request.features)
        return time.thread_time() - started

    assert cpu_s(costly) > 5 * cpu_s(live)


def test_a_worker_answers_each_request_as_the_app_does(tmp_path: Path) -> None:
    data = load_data()
    costly = train_models(data)[3]
    loaded = load_model_file(costly.save(tmp_path))
    rows = [r.features for r in requests(data, 3, seed=3)]
    inputs = [ModelInput(str(i), "d", 0, features) for i, features in enumerate(rows)]
    answers = ModelAdapter(loaded).predict(inputs)
    assert [(a.value, a.probabilities) for a in answers] == [
        (str(value), probabilities) for value, probabilities in map(costly.predict_one, rows)
    ]
    assert all(a.cpu_ms is not None and a.cpu_ms > 0 for a in answers)


def test_request_stream_is_seeded_and_segmented() -> None:
    data = load_data()
    first = [r.features for r in requests(data, 5, seed=1)]
    assert first == [r.features for r in requests(data, 5, seed=1)]
    assert first != [r.features for r in requests(data, 5, seed=2)]
    countries = {r.segments["country"] for r in requests(data, 300, seed=1)}
    assert countries == set(COUNTRIES)


def test_generated_experiments_parse() -> None:
    parsed = ExperimentsFile.parse(experiments_toml("d", "v1", ["v2", "v3"], min_samples=50))
    names = [e.name for e in parsed.experiments]
    assert names == ["d/v2", "d/v3"]
    assert parsed.get("d/v2").rules.primary_metric == "log_loss"
    assert parsed.join.pair_ttl_s == 30.0
    rules = parsed.get("d/v3").rules
    cpu = next(g for g in rules.guardrails if g.metric == "cpu_ms")
    assert cpu.relative and cpu.margin == CPU_MARGIN
    assert rules.metrics["cpu_ms"].bounds == (0.0, 10.0)
    assert rules.metrics["latency_ms"].bounds == (0.0, 500.0)


def test_generated_delivery_experiment_judges_downstream_kpis() -> None:
    text = experiments_toml("d", "v1", ["v2", "v3"]) + delivery_experiment_toml("eta", "v1", "v2")
    parsed = ExperimentsFile.parse(text)
    assert [e.name for e in parsed.experiments] == ["d/v2", "d/v3", "eta/v2"]
    eta = parsed.get("eta/v2")
    assert (eta.model, eta.task, eta.rules.primary_metric) == ("eta", "regression", "late")
    assert eta.decision is not None and eta.decision.path.endswith(":promise_slot")
    assert [k.path for k in eta.kpis] == ["streams.downstream.delivery:delivery_kpis"]
    assert eta.rules.segments == ("city",)
    assert {r.metric for r in eta.rules.rules} == {"late", "abs_error", "invalid"}
    assert not parsed.get("d/v2").needs_inputs and eta.needs_inputs


def test_delivery_stream_is_seeded() -> None:
    first = [o.features for o in deliveries(5, seed=1)]
    assert first == [o.features for o in deliveries(5, seed=1)]
    assert first != [o.features for o in deliveries(5, seed=2)]


class _Hook:
    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []

    def publish(self, features: dict[str, Any], prediction: Any, **kwargs: Any) -> str:
        self.published.append({"features": features, "prediction": prediction, **kwargs})
        return f"r{len(self.published)}"


def test_delivery_app_publishes_orders_as_the_eta_model() -> None:
    live, _ = train_eta_models(n=300)
    hook = _Hook()
    app = DeliveryApp(live, hook, model_name="eta", version="v1")  # type: ignore[arg-type]
    order = next(deliveries(1))
    request_id, minutes = app.handle(order)
    sent = hook.published[0]
    assert request_id == "r1" and app.served == 1
    assert (sent["model"], sent["version"], sent["prediction"]) == ("eta", "v1", minutes)
    assert sent["features"] == order.features and sent["segments"] == {"city": order.city}


class _Labels:
    def __init__(self) -> None:
        self.seen: list[str] = []
        self.models: dict[str, str | None] = {}
        self.lock = threading.Lock()

    def label(self, request_id: str, value: object, *, model: str | None = None) -> bool:
        with self.lock:
            self.seen.append(request_id)
            self.models[request_id] = model
        return True


def test_label_feeder_delays_and_reorders() -> None:
    sink = _Labels()
    feeder = LabelFeeder(sink, min_delay_s=0.01, max_delay_s=0.3, seed=1)  # type: ignore[arg-type]
    for i in range(40):
        feeder.schedule(f"r{i}", i % 2)
    time.sleep(0.05)
    assert len(sink.seen) < 40  # not all due yet
    deadline = time.monotonic() + 5
    while len(sink.seen) < 40 and time.monotonic() < deadline:
        time.sleep(0.02)
    feeder.close()
    assert sorted(sink.seen) == sorted(f"r{i}" for i in range(40))
    assert sink.seen != [f"r{i}" for i in range(40)]
    assert feeder.out_of_order > 0 and feeder.pending == 0


def test_label_feeder_close_publishes_what_is_left() -> None:
    sink = _Labels()
    feeder = LabelFeeder(sink, min_delay_s=60, max_delay_s=61)  # type: ignore[arg-type]
    feeder.schedule("r1", 1)
    feeder.schedule("o1", 27.5, model="eta")
    feeder.close()
    assert sorted(sink.seen) == ["o1", "r1"] and feeder.published == 2
    assert sink.models == {"r1": None, "o1": "eta"}  # each label goes to its own model
