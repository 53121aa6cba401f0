"""The demo's pure parts: data, models, request stream, experiments file, label feeder."""

from __future__ import annotations

import doctest
import importlib
import threading
import time

import pytest

from streams.demo.experiments import experiments_toml
from streams.demo.models import load_data, train_models
from streams.demo.serving import LabelFeeder
from streams.demo.traffic import COUNTRIES, requests
from streams.join.experiments import ExperimentsFile

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
    live, better, worse = train_models(data)
    stream = list(requests(data, 600, seed=3))

    def accuracy(model_index: int) -> float:
        model = (live, better, worse)[model_index]
        return sum(model.predict_one(r.features)[0] == r.label for r in stream) / len(stream)

    assert accuracy(1) > accuracy(0) + 0.03
    assert accuracy(2) < accuracy(0) - 0.05


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


class _Labels:
    def __init__(self) -> None:
        self.seen: list[str] = []
        self.lock = threading.Lock()

    def label(self, request_id: str, value: object) -> bool:
        with self.lock:
            self.seen.append(request_id)
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
    feeder.close()
    assert sink.seen == ["r1"] and feeder.published == 1
