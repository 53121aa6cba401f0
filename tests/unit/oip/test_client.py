"""The OIP candidate's calls on an in-process transport: the protocol's JSON, retries,
splitting, deadlines and readiness (tests/integration/test_oip.py has the real MLServer)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from streams.oip import OIPCandidate, OIPNotReady, OIPOptions, OIPResponseError, parse_values
from streams.oip.tensors import build_request
from streams.records import ModelInput
from streams.worker.model import ModelAdapter

Handler = Callable[[httpx.Request], httpx.Response]


def rows(count: int, **categorical: str) -> list[ModelInput]:
    return [
        ModelInput(f"r{i}", "m", 0, {"a": float(i), "b": -float(i)}, dict(categorical))
        for i in range(count)
    ]


def doubling(request: httpx.Request) -> httpx.Response:
    """A server predicting 2 * a for each row of a single FP64 tensor."""
    tensor = json.loads(request.content)["inputs"][0]
    n, k = tensor["shape"]
    values = [2 * tensor["data"][i * k] for i in range(n)]
    return httpx.Response(
        200, json={"model_name": "m", "outputs": [
            {"name": "predict", "shape": [n, 1], "datatype": "FP64", "data": values}]},
    )  # fmt: skip


def candidate(handler: Handler, **options: object) -> OIPCandidate:
    settings: dict[str, Any] = {"features": ("a", "b"), "backoff_ms": 1.0, **options}
    transport = httpx.MockTransport(handler)
    return OIPCandidate(OIPOptions("http://oip", "m", **settings), transport=transport)


def test_a_numeric_batch_is_one_fp64_matrix_in_feature_order() -> None:
    body = build_request(rows(2), ["b", "a"], "id-1").body
    assert body == {
        "id": "id-1",
        "inputs": [{"name": "input-0", "shape": [2, 2], "datatype": "FP64",
                    "data": [-0.0, 0.0, -1.0, 1.0]}],
    }  # fmt: skip


def test_categorical_features_make_one_tensor_per_column_as_a_data_frame() -> None:
    body = build_request(rows(2, plan="pro"), ["a", "plan"], "x").body
    assert body["parameters"] == {"content_type": "pd"}
    assert body["inputs"] == [
        {"name": "a", "shape": [2, 1], "datatype": "FP64", "data": [0.0, 1.0]},
        {"name": "plan", "shape": [2, 1], "datatype": "BYTES", "data": ["pro", "pro"]},
    ]


def test_an_input_whose_feature_types_differ_is_refused_alone() -> None:
    odd = ModelInput("odd", "m", 0, {"a": 1.0}, {"b": "x"})
    request = build_request([*rows(2), odd], ["a", "b"], "x")
    assert request.sent == [0, 1]
    assert list(request.refused) == [2] and "b" in request.refused[2]


@pytest.mark.parametrize(
    ("datatype", "data", "expected"),
    [("INT64", [1, 0], ["1", "0"]), ("BYTES", ["yes", "no"], ["yes", "no"]),
     ("BOOL", [True, False], ["True", "False"]), ("FP32", [0.5, 2], [0.5, 2.0])],
)  # fmt: skip
def test_output_datatypes_become_labels_or_numbers(
    datatype: str, data: list[object], expected: list[object]
) -> None:
    response = {"outputs": [{"name": "predict", "shape": [2], "datatype": datatype, "data": data}]}
    assert parse_values(response, 2) == expected


def test_predict_is_preferred_and_a_wrong_shape_is_an_error() -> None:
    outputs = [
        {"name": "predict_proba", "shape": [1, 2], "datatype": "FP64", "data": [0.2, 0.8]},
        {"name": "predict", "shape": [1], "datatype": "INT64", "data": [1]},
    ]
    assert parse_values({"outputs": outputs}, 1) == ["1"]
    with pytest.raises(OIPResponseError, match="one value for each of 2 rows"):
        parse_values({"outputs": outputs[:1]}, 2)
    with pytest.raises(OIPResponseError, match="no outputs"):
        parse_values({"error": "boom"}, 1)


def test_micro_batches_are_cut_into_requests_and_answered_in_order() -> None:
    sizes: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v2/models/m/versions/v3/infer"
        sizes.append(json.loads(request.content)["inputs"][0]["shape"][0])
        return doubling(request)

    model = candidate(handler, version="v3", batch_size=4, concurrency=3)
    outcomes = ModelAdapter(model).predict(rows(10))
    model.close()
    assert [o.value for o in outcomes] == [2.0 * i for i in range(10)]
    assert sorted(sizes) == [2, 4, 4] and all(o.error is None for o in outcomes)


def test_503_and_connection_errors_are_retried_with_backoff() -> None:
    failures = [httpx.ConnectError("refused"), httpx.Response(503, json={"error": "busy"})]

    def handler(request: httpx.Request) -> httpx.Response:
        if failures:
            failure = failures.pop(0)
            if isinstance(failure, Exception):
                raise failure
            return failure
        return doubling(request)

    model = candidate(handler, retries=2)
    assert [o.value for o in model.predict_outcomes(rows(3))] == [0.0, 2.0, 4.0]
    model.close()


def test_retries_exhausted_give_each_input_an_error_naming_the_cause() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(503, json={"error": "model loading"})

    model = candidate(handler, retries=2)
    outcomes = model.predict_outcomes(rows(3))
    model.close()
    assert len(calls) == 3
    assert [o.error for o in outcomes] == ["oip: HTTP 503: model loading"] * 3


def test_a_bad_row_is_found_by_splitting_and_only_it_fails() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        data = json.loads(request.content)["inputs"][0]["data"]
        if 5.0 in data:
            return httpx.Response(400, json={"error": "bad row"})
        return doubling(request)

    model = candidate(handler, batch_size=8)
    outcomes = model.predict_outcomes(rows(8))
    model.close()
    assert [o.error for o in outcomes] == [None] * 5 + ["oip: HTTP 400: bad row"] + [None] * 2
    assert outcomes[7].value == 14.0


def test_a_server_slower_than_the_deadline_gives_timeouts_not_a_stall() -> None:
    release = threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        release.wait(2.0)  # MockTransport ignores timeouts: emulate a read timeout
        raise httpx.ReadTimeout("slow", request=request)

    model = candidate(handler, timeout_ms=100)
    started = time.monotonic()
    outcomes = model.predict_outcomes(rows(2))
    release.set()
    model.close()
    assert [o.error for o in outcomes] == ["timeout", "timeout"]
    assert time.monotonic() - started < 2.5


def test_readiness_names_the_endpoint_and_the_answer() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/health/ready":
            return httpx.Response(200)
        return httpx.Response(404, json={"error": "Model m with version v9 not found"})

    model = candidate(handler, version="v9")
    with pytest.raises(OIPNotReady) as caught:
        model.wait_ready(0)
    model.close()
    message = str(caught.value)
    assert "'m' at http://oip is not ready" in message
    path = "/v2/models/m/versions/v9/ready"
    assert f"GET {path} answered HTTP 404: Model m with version v9" in message


def test_features_default_to_the_first_inputs_sorted_numeric_names() -> None:
    model = candidate(doubling, features=None)
    assert ModelAdapter(model).required_features(rows(1)[0]) == ("a", "b")
    model.close()
