"""JSON Lines and Avro traffic logs: round trips, ordering, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streams.records import GroundTruth, ModelInput, Prediction, Role
from streams.replay import TrafficError, read_traffic, write_avro, write_jsonl
from streams.replay.traffic import from_json, to_json

LIVE = Prediction(
    "r1", "m", "v1", Role.LIVE, 20, "1", {"0": 0.25, "1": 0.75}, 0.5, None, {"country": "DE"}
)
SHADOW = Prediction("r1", "m", "v2", Role.SHADOW, 10, None, None, 3.0, "timeout", {})
LABEL = GroundTruth("r1", "m", 30, "1")
REGRESSION = GroundTruth("r2", "m", 5, 12.5)


def test_jsonl_round_trip_sorted_by_timestamp(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    assert write_jsonl(path, [LIVE, SHADOW, LABEL, REGRESSION]) == 4
    assert read_traffic([path]) == [REGRESSION, SHADOW, LIVE, LABEL]


def test_avro_round_trip_one_type_per_file(tmp_path: Path) -> None:
    predictions, labels = tmp_path / "p.avro", tmp_path / "g.avro"
    write_avro(predictions, [LIVE, SHADOW])
    write_avro(labels, [LABEL, REGRESSION])
    assert read_traffic([predictions, labels]) == [REGRESSION, SHADOW, LIVE, LABEL]
    with pytest.raises(TrafficError, match="one record type"):
        write_avro(tmp_path / "mixed.avro", [LIVE, LABEL])


INPUT = ModelInput(
    "r1", "m", 1, {"distance_km": 3.5}, {"traffic": "high"}, {"city": "paris"}, {"basket": [1, 2]}
)


def test_inputs_round_trip_in_both_formats(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "i.jsonl", [INPUT, LABEL])
    assert read_traffic([tmp_path / "i.jsonl"]) == [INPUT, LABEL]
    write_avro(tmp_path / "i.avro", [INPUT])
    assert read_traffic([tmp_path / "i.avro"]) == [INPUT]


def test_jsonl_and_avro_mix(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", [LABEL])
    write_avro(tmp_path / "b.avro", [LIVE])
    assert read_traffic([tmp_path / "a.jsonl", tmp_path / "b.avro"]) == [LIVE, LABEL]


def test_minimal_prediction_fields_default() -> None:
    record = from_json(
        {
            "type": "prediction",
            "request_id": "r",
            "model": "m",
            "version": "v1",
            "role": "live",
            "timestamp_ms": 1,
            "value": 2,
        }
    )
    assert record == Prediction("r", "m", "v1", Role.LIVE, 1, 2.0)
    assert from_json(to_json(LIVE)) == LIVE


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "t.jsonl:2: not JSON"),
        ('{"type": "click"}', "type must be 'prediction', 'ground_truth' or 'input'"),
        (
            '{"type": "ground_truth", "request_id": "r", "model": "m", "timestamp_ms": 1}',
            "missing field 'value'",
        ),
        (
            '{"type": "ground_truth", "request_id": "r", "model": "m", "timestamp_ms": 1,'
            ' "value": [1]}',
            "value must be a string or a finite number",
        ),
        (
            '{"type": "prediction", "request_id": "r", "model": "m", "version": "v",'
            ' "role": "boss", "timestamp_ms": 1}',
            "t.jsonl:2",
        ),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(to_json(LABEL)) + "\n" + line + "\n")
    with pytest.raises(TrafficError, match=message.replace("[", r"\[").replace("(", r"\(")):
        read_traffic([path])


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(TrafficError, match="cannot read"):
        read_traffic([tmp_path / "missing.jsonl"])
    binary = tmp_path / "x.bin"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(TrafficError, match="neither JSON Lines"):
        read_traffic([binary])
    truncated = tmp_path / "t.avro"
    write_avro(truncated, [LIVE, SHADOW])
    truncated.write_bytes(truncated.read_bytes()[:-7])
    with pytest.raises(TrafficError, match=r"t\.avro"):
        read_traffic([truncated])


def test_avro_of_another_schema_is_refused(tmp_path: Path) -> None:
    import fastavro

    path = tmp_path / "other.avro"
    schema = {
        "type": "record",
        "name": "Other",
        "namespace": "x",
        "fields": [{"name": "a", "type": "int"}],
    }
    with path.open("wb") as handle:
        fastavro.writer(handle, fastavro.parse_schema(schema), [{"a": 1}])
    with pytest.raises(TrafficError, match=r"x\.Other"):
        read_traffic([path])
