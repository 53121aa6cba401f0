"""Inference-logger CloudEvents to hook calls, without a broker: payloads of both
protocols, pairing in either order, duplicates, and refusals with their reasons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cloudevents.core.bindings.http import to_binary_event, to_structured_event
from cloudevents.core.v1.event import CloudEvent

from streams.ingest import Half, Pairing, PayloadError, request_rows, response_values
from streams.ingest.kserve import REQUEST_TYPE, RESPONSE_TYPE, CloudEventsIngest, IngestError

AT = datetime(2026, 1, 1, tzinfo=UTC)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, Any, dict[str, Any]]] = []

    def __call__(self, features: Any, prediction: Any, **kwargs: Any) -> str:
        self.calls.append((features, prediction, kwargs))
        return str(kwargs["request_id"])


def event(kind: str, event_id: str, data: Any, at: datetime = AT, **extensions: str) -> CloudEvent:
    attributes = {"specversion": "1.0", "id": event_id, "type": kind, "source": "/logger",
                  "time": at, "datacontenttype": "application/json",
                  "inferenceservicename": "iris", **extensions}  # fmt: skip
    return CloudEvent(attributes=attributes, data=data)


def send(ingest: CloudEventsIngest, ce: CloudEvent, structured: bool = False) -> None:
    message = (to_structured_event if structured else to_binary_event)(ce)
    ingest.handle(message.headers, message.body)


def test_v1_rows_take_the_configured_names_and_dicts_keep_theirs() -> None:
    assert request_rows({"instances": [[1, "a"]]}, ["x", "plan"]) == [{"x": 1, "plan": "a"}]
    assert request_rows({"instances": [{"x": 2}]}) == [{"x": 2}]
    with pytest.raises(PayloadError, match="2 values per row, but 1 feature names"):
        request_rows({"instances": [[1, 2]]}, ["x"])


def test_oip_tensors_become_rows_whether_one_matrix_or_one_column_each() -> None:
    columns = {"inputs": [
        {"name": "age", "shape": [2], "datatype": "FP64", "data": [41.0, 29.0]},
        {"name": "plan", "shape": [2, 1], "datatype": "BYTES", "data": [["pro"], ["free"]]},
    ]}  # fmt: skip
    assert request_rows(columns) == [{"age": 41.0, "plan": "pro"}, {"age": 29.0, "plan": "free"}]
    bad = {"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP64", "data": [1.0]}]}
    with pytest.raises(PayloadError, match="shape"):
        request_rows(bad)
    with pytest.raises(PayloadError, match="neither"):
        response_values({"result": 1})


def test_binary_and_structured_events_pair_by_id_in_either_order() -> None:
    recorder = Recorder()
    ingest = CloudEventsIngest(recorder, version="v1", columns=["a", "b"])
    send(ingest, event(RESPONSE_TYPE, "e1", {"predictions": [1, 0]}, AT + timedelta(seconds=0.02)))
    assert recorder.calls == []
    send(ingest, event(REQUEST_TYPE, "e1", {"instances": [[1.0, 2.0], [3.0, 4.0]]}), True)
    assert [(f, p, k["request_id"], k["model"], k["version"]) for f, p, k in recorder.calls] == [
        ({"a": 1.0, "b": 2.0}, 1, "e1.0", "iris", "v1"),
        ({"a": 3.0, "b": 4.0}, 0, "e1.1", "iris", "v1"),
    ]
    assert recorder.calls[0][2]["latency_ms"] == pytest.approx(20.0)
    assert (ingest.count("request"), ingest.count("response"), ingest.count("published")) == (
        1, 1, 2,
    )  # fmt: skip


def test_a_probability_vector_gives_its_most_probable_class() -> None:
    recorder = Recorder()
    ingest = CloudEventsIngest(recorder, version="v1", model="churn")
    send(ingest, event(REQUEST_TYPE, "e2", {"instances": [[0.5]]}))
    send(ingest, event(RESPONSE_TYPE, "e2", {"predictions": [[0.2, 0.8]]}))
    features, prediction, kwargs = recorder.calls[0]
    assert (features, prediction, kwargs["request_id"], kwargs["model"]) == (
        {"f0": 0.5}, "1", "e2", "churn",
    )  # fmt: skip
    assert kwargs["probabilities"] == {"0": 0.2, "1": 0.8}


def test_a_retried_half_counts_as_a_duplicate_and_publishes_nothing_twice() -> None:
    recorder = Recorder()
    ingest = CloudEventsIngest(recorder, version="v1")
    request = event(REQUEST_TYPE, "e3", {"instances": [[1.0]]})
    send(ingest, request)
    send(ingest, request)
    send(ingest, event(RESPONSE_TYPE, "e3", {"predictions": [1]}))
    send(ingest, event(RESPONSE_TYPE, "e3", {"predictions": [1]}))
    assert len(recorder.calls) == 1 and ingest.count("duplicate") == 2


@pytest.mark.parametrize(
    ("headers", "body", "reason"),
    [
        ({"content-type": "application/json"}, b"{}", "not a CloudEvent"),
        ({"ce-specversion": "1.0", "ce-id": "x", "ce-source": "/", "ce-type": "other"},
         b"{}", "is not an inference event"),
        ({"ce-specversion": "1.0", "ce-id": "x", "ce-source": "/", "ce-type": REQUEST_TYPE,
          "content-type": "application/json"}, b'{"rows": 1}', "request payload: neither"),
        ({"ce-specversion": "1.0", "ce-id": "x", "ce-source": "/", "ce-type": RESPONSE_TYPE,
          "content-type": "text/plain"}, b"not json", "not JSON"),
    ],
)  # fmt: skip
def test_undecodable_events_are_refused_with_the_reason_and_counted(
    headers: dict[str, str], body: bytes, reason: str
) -> None:
    recorder = Recorder()
    ingest = CloudEventsIngest(recorder, version="v1")
    with pytest.raises(IngestError, match=reason):
        ingest.handle(headers, body)
    assert ingest.count("undecodable") == 1 and recorder.calls == []


def test_a_response_with_a_different_row_count_is_refused() -> None:
    ingest = CloudEventsIngest(Recorder(), version="v1")
    send(ingest, event(REQUEST_TYPE, "e4", {"instances": [[1.0], [2.0]]}))
    with pytest.raises(IngestError, match="2 request rows, 1 predictions"):
        send(ingest, event(RESPONSE_TYPE, "e4", {"predictions": [1]}))
    assert ingest.count("mismatched") == 1


def test_halves_that_never_meet_expire_and_are_counted() -> None:
    now = [0.0]
    pairing = Pairing(ttl_s=10, max_pending=2, clock=lambda: now[0])
    for i in range(3):
        pairing.offer(Half(f"e{i}", "request", [{}], "m", None))
    assert (pairing.pending, pairing.unpaired) == (2, 1)  # the oldest was evicted
    now[0] = 11.0
    pairing.expire()
    assert (pairing.pending, pairing.unpaired) == (0, 3)
