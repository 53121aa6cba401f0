"""Batch assembly, input checks, dead letters and metrics, without Kafka."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from streams.codec import Codec
from streams.kafka.deadletter import dead_letter
from streams.records import ModelInput, Prediction, Role
from streams.worker.batch import assemble
from streams.worker.config import WorkerConfig
from streams.worker.metrics import WorkerCollector, WorkerMetrics
from streams.worker.validate import check_input

CODEC = Codec()


class Msg:
    def __init__(self, data: bytes | None, offset: int, partition: int = 0, err: object = None):
        self.data, self.off, self.part, self.err = data, offset, partition, err

    def value(self) -> bytes | None:
        return self.data

    def key(self) -> bytes | None:
        return b"key"

    def topic(self) -> str:
        return "shadow.inputs"

    def partition(self) -> int:
        return self.part

    def offset(self) -> int:
        return self.off

    def error(self) -> object:
        return self.err


def encoded(request_id: str, model: str = "churn", **numeric: float) -> bytes:
    return CODEC.encode(ModelInput(request_id, model, 0, numeric or {"a": 1.0}))


def test_assemble_sorts_inputs_rejects_and_skips() -> None:
    prediction = CODEC.encode(Prediction("r9", "churn", "v1", Role.LIVE, 0, value=1.0))
    messages = [
        Msg(encoded("r1"), 10),
        Msg(b"\x00garbage", 11),
        Msg(prediction, 12),
        Msg(encoded("r2", a=float("nan")), 13),
        Msg(encoded("r3", "fraud"), 5, partition=1),
        Msg(encoded("r4", b=2.0), 14),
        Msg(None, 99, err="transient"),
    ]
    batch = assemble(messages, CODEC, model_name="churn", required=["a"])
    assert [r.request_id for r in batch.inputs] == ["r1"]
    assert [(r.message.offset(), r.error_type) for r in batch.rejects] == [
        (11, "undecodable"),
        (12, "wrong_record_type"),
        (13, "nan_features"),
        (14, "missing_features"),
    ]
    assert batch.skipped == 1
    assert [m.error() for m in batch.errors] == ["transient"]
    assert batch.next_offsets == {("shadow.inputs", 0): 15, ("shadow.inputs", 1): 6}


def test_required_features_fixed_from_first_input() -> None:
    seen: list[str] = []

    def required_for(first: ModelInput) -> tuple[str, ...]:
        seen.append(first.request_id)
        return ("a",)

    batch = assemble([Msg(encoded("r1"), 0), Msg(encoded("r2", b=1.0), 1)], CODEC,
                     required_for=required_for)  # fmt: skip
    assert seen == ["r1"]
    assert [r.error_type for r in batch.rejects] == ["missing_features"]


def test_check_input_infinite_and_categorical() -> None:
    record = ModelInput("r", "m", 0, {"a": float("inf")}, {"plan": "pro"})
    invalid = check_input(record, None)
    assert invalid is not None and invalid.error_type == "nan_features"
    assert check_input(ModelInput("r", "m", 0, {}, {"plan": "pro"}), ["plan"]) is None


def test_dead_letter_keeps_bytes_and_place() -> None:
    letter = dead_letter(Msg(b"junk", 7, 3), component="worker", error_type="undecodable",
                         reason="x" * 5000)  # fmt: skip
    assert (letter.source_partition, letter.source_offset, letter.key, letter.value) == (
        3, 7, b"key", b"junk",
    )  # fmt: skip
    assert len(letter.reason) == 2000
    assert CODEC.decode(CODEC.encode(letter)) == letter


def test_metrics_export_and_status_line() -> None:
    metrics = WorkerMetrics(model="churn", version="v2")
    metrics.consumed, metrics.produced, metrics.lag = 10, 9, 4
    for seconds in (0.002, 0.004, 0.3):
        metrics.observe_batch(seconds)
    registry = CollectorRegistry()
    registry.register(WorkerCollector(metrics))
    text = generate_latest(registry).decode()
    assert 'shadow_worker_produced_total{model="churn",version="v2"} 9.0' in text
    assert 'shadow_worker_consumer_lag{model="churn",version="v2"} 4.0' in text
    assert 'shadow_worker_batch_seconds_bucket{le="0.005",model="churn",version="v2"} 2.0' in text
    assert 'shadow_worker_batch_seconds_count{model="churn",version="v2"} 3.0' in text
    assert metrics.status_line().endswith("lag=4 batch_p50=4.0ms")


def test_group_id_default_and_override() -> None:
    assert WorkerConfig(name="churn").group_for("v3") == "shadow-worker.churn.v3"
    assert WorkerConfig(group_id="mine").group_for("v3") == "mine"
