"""The examples on a real broker: the FastAPI app (through TestClient) and the plain service."""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path
from types import ModuleType

import pytest
from prometheus_client import CollectorRegistry

from streams.records import GroundTruth, ModelInput, Prediction
from streams.settings import Settings
from tests.integration.helpers import create_topics
from tests.integration.test_hook import consume

with warnings.catch_warnings():
    # This starlette release asks for the `httpx2` package (not installed) instead of httpx.
    warnings.filterwarnings("ignore", message=".*install `httpx2`")
    from fastapi.testclient import TestClient

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # FastAPI resolves the route annotations through it
    spec.loader.exec_module(module)
    return module


def test_fastapi_app_publishes_predictions_errors_and_labels(kafka_settings: Settings) -> None:
    create_topics(kafka_settings)
    example = load_example("hook_fastapi")
    app = example.create_app(kafka_settings, registry=CollectorRegistry(), close_at_exit=False)
    ids = []
    with TestClient(app) as client:  # runs the lifespan: publisher created, then closed
        for tenure in range(10):
            body = {"features": {"tenure_months": tenure, "plan": "pro"}, "country": "fr"}
            response = client.post("/predict", json=body)
            assert response.status_code == 200
            ids.append(response.json()["request_id"])
        with pytest.raises(ValueError, match="tenure_months is required"):  # unchanged
            client.post("/predict", json={"features": {"plan": "free"}})
        for i, rid in enumerate(ids):
            assert client.post("/label", json={"request_id": rid, "churned": i < 3}).json() == {
                "accepted": True
            }
        publisher = app.state.shadow_publisher
    counters = publisher.counters
    assert counters.delivered == counters.published == 11 * 2 + 10

    topics = kafka_settings.topics
    got = consume(kafka_settings, [topics.inputs, topics.live_predictions, topics.ground_truth], 32)
    inputs = [c.record for c in got if isinstance(c.record, ModelInput)]
    predictions = [c.record for c in got if isinstance(c.record, Prediction)]
    labels = {c.record.request_id: c.record.value for c in got if isinstance(c.record, GroundTruth)}
    assert len(inputs) == len(predictions) == 11
    assert labels == {rid: "yes" if i < 3 else "no" for i, rid in enumerate(ids)}
    ok = {p.request_id: p for p in predictions if p.error is None}
    assert set(ok) == set(ids)
    assert ok[ids[0]].value == "yes" and ok[ids[0]].probabilities == {
        "yes": 0.9,
        "no": pytest.approx(0.1),
    }
    assert ok[ids[9]].segments == {"country": "fr"}
    failed = [p for p in predictions if p.error is not None]
    assert [(p.value, p.error) for p in failed] == [(None, "ValueError: tenure_months is required")]
    by_id = {i.request_id: i for i in inputs}
    assert by_id[ids[4]].numeric == {"tenure_months": 4.0}
    assert by_id[ids[4]].categorical == {"plan": "pro"}


def test_plain_example_publishes_and_labels(kafka_settings: Settings) -> None:
    create_topics(kafka_settings)
    example = load_example("hook_plain")
    publisher, predict = example.build(
        kafka_settings, registry=CollectorRegistry(), close_at_exit=False
    )
    from streams.hook import current_request_id

    with publisher:
        price = predict({"rooms": 3, "area_m2": 72.0, "city": "Lyon", "amenities": ["lift"]})
        rid = current_request_id()
        assert rid is not None and price == 3252.0
        publisher.label(rid, 265_000.0)
    topics = kafka_settings.topics
    got = consume(kafka_settings, [topics.inputs, topics.live_predictions, topics.ground_truth], 3)
    records = {type(c.record): c.record for c in got}
    assert records[ModelInput] == ModelInput(
        rid, "price", records[ModelInput].timestamp_ms, {"rooms": 3.0, "area_m2": 72.0},
        {"city": "Lyon"}, {"city": "Lyon"}, {"amenities": ["lift"]},
    )  # fmt: skip
    assert records[Prediction].value == 3252.0 and records[Prediction].version == "v3"
    assert records[GroundTruth].value == 265_000.0
