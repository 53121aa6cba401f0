"""Traffic logs: JSON Lines and Avro object container files of predictions and labels.

JSON Lines, one object per line::

    {"type": "prediction", "request_id": "r1", "model": "churn", "version": "v1",
     "role": "LIVE", "timestamp_ms": 1700000000000, "value": "1",
     "probabilities": {"0": 0.2, "1": 0.8}, "latency_ms": 0.4, "error": null,
     "segments": {"country": "DE"}}
    {"type": "ground_truth", "request_id": "r1", "model": "churn",
     "timestamp_ms": 1700000004000, "value": "1"}
    {"type": "input", "request_id": "r1", "model": "churn", "timestamp_ms": 1700000000000,
     "numeric": {"age": 41.0}, "categorical": {"plan": "pro"}, "segments": {}, "extra": null}

Inputs are needed only by experiments with downstream decision or KPI functions.

Optional prediction fields (the cost fields ``cpu_ms``, ``worker``, ``worker_rss_mb``,
``worker_peak_mb``, ``load_s``, ``model_mb`` too) default as in
:class:`streams.records.Prediction`. A JSON string
value is a class label, a number a regression value. Avro container files are written
with the ``dev.shadoweval.Prediction``, ``GroundTruth`` or ``ModelInput`` schema.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import fastavro

from streams.codec.catalogue import SchemaCatalogue
from streams.codec.convert import FROM_AVRO, TO_AVRO
from streams.records import GroundTruth, ModelInput, Prediction, Role

__all__ = [
    "TrafficError",
    "TrafficRecord",
    "TrafficWriter",
    "from_json",
    "read_traffic",
    "to_json",
    "write_avro",
    "write_jsonl",
]

TrafficRecord = Prediction | GroundTruth | ModelInput
_AVRO_MAGIC = b"Obj\x01"
_NAMES = {
    Prediction: "dev.shadoweval.Prediction",
    GroundTruth: "dev.shadoweval.GroundTruth",
    ModelInput: "dev.shadoweval.ModelInput",
}


class TrafficError(ValueError):
    """A traffic file that cannot be read; the message names the file and line."""


def to_json(record: TrafficRecord) -> dict[str, Any]:
    """The JSON Lines object of one record.

    Examples
    --------
    >>> to_json(GroundTruth("r1", "churn", 5, "1"))
    {'type': 'ground_truth', 'request_id': 'r1', 'model': 'churn', 'timestamp_ms': 5, 'value': '1'}
    """
    if isinstance(record, ModelInput):
        return {
            "type": "input",
            "request_id": record.request_id,
            "model": record.model,
            "timestamp_ms": record.timestamp_ms,
            "numeric": dict(record.numeric),
            "categorical": dict(record.categorical),
            "segments": dict(record.segments),
            "extra": record.extra,
        }
    if isinstance(record, GroundTruth):
        return {
            "type": "ground_truth",
            "request_id": record.request_id,
            "model": record.model,
            "timestamp_ms": record.timestamp_ms,
            "value": record.value,
        }
    return {
        "type": "prediction",
        "request_id": record.request_id,
        "model": record.model,
        "version": record.version,
        "role": record.role.value,
        "timestamp_ms": record.timestamp_ms,
        "value": record.value,
        "probabilities": None if record.probabilities is None else dict(record.probabilities),
        "latency_ms": record.latency_ms,
        "error": record.error,
        "segments": dict(record.segments),
        **{name: value for name in COST_FIELDS if (value := getattr(record, name)) is not None},
    }


COST_FIELDS = ("cpu_ms", "worker", "worker_rss_mb", "worker_peak_mb", "load_s", "model_mb")
"""A prediction's optional cost fields (Prediction version 2), kept when present."""


def _costs(obj: Mapping[str, Any], where: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name in COST_FIELDS:
        value = obj.get(name)
        if value is None:
            continue
        if name == "worker":
            found[name] = str(value)
        elif isinstance(value, bool) or not isinstance(value, int | float):
            raise TrafficError(f"{where}: {name} must be a number (got {value!r})")
        else:
            found[name] = float(value)  # non-finite values are refused by the statistics
    return found


def _label(value: Any, where: str) -> float | str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TrafficError(f"{where}: value must be a string or a finite number (got {value!r})")
    return float(value)


def _text_map(value: Any, where: str, field: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TrafficError(f"{where}: {field} must be an object (got {value!r})")
    return {str(k): str(v) for k, v in value.items()}


def _probabilities(value: Any, where: str) -> dict[str, float] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TrafficError(f"{where}: probabilities must be an object (got {value!r})")
    try:
        return {str(k): float(v) for k, v in value.items()}
    except (TypeError, ValueError):
        raise TrafficError(f"{where}: probabilities must map classes to numbers") from None


def from_json(obj: Any, where: str = "record") -> TrafficRecord:
    """One record from its JSON Lines object; :class:`TrafficError` says what is wrong.

    Examples
    --------
    >>> from_json({"type": "ground_truth", "request_id": "r1", "model": "m",
    ...            "timestamp_ms": 5, "value": 2})
    GroundTruth(request_id='r1', model='m', timestamp_ms=5, value=2.0)
    """
    if not isinstance(obj, Mapping):
        raise TrafficError(f"{where}: expected a JSON object")
    kind = obj.get("type")
    try:
        if kind == "ground_truth":
            value = _label(obj["value"], where)
            if value is None:
                raise TrafficError(f"{where}: a ground_truth needs a value")
            return GroundTruth(
                str(obj["request_id"]), str(obj["model"]), int(obj["timestamp_ms"]), value
            )
        if kind == "input":
            numeric = obj.get("numeric") or {}
            if not isinstance(numeric, Mapping):
                raise TrafficError(f"{where}: numeric must be an object (got {numeric!r})")
            return ModelInput(
                str(obj["request_id"]),
                str(obj["model"]),
                int(obj["timestamp_ms"]),
                {str(k): float(v) for k, v in numeric.items()},
                _text_map(obj.get("categorical"), where, "categorical"),
                _text_map(obj.get("segments"), where, "segments"),
                obj.get("extra"),
            )
        if kind == "prediction":
            error = obj.get("error")
            return Prediction(
                str(obj["request_id"]),
                str(obj["model"]),
                str(obj["version"]),
                Role(str(obj["role"]).upper()),
                int(obj["timestamp_ms"]),
                _label(obj.get("value"), where),
                _probabilities(obj.get("probabilities"), where),
                float(obj.get("latency_ms") or 0.0),
                None if error is None else str(error),
                _text_map(obj.get("segments"), where, "segments"),
                **_costs(obj, where),
            )
    except KeyError as exc:
        raise TrafficError(f"{where}: missing field {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        if isinstance(exc, TrafficError):
            raise
        raise TrafficError(f"{where}: {exc}") from None
    raise TrafficError(
        f"{where}: type must be 'prediction', 'ground_truth' or 'input' (got {kind!r})"
    )


def _read_jsonl(path: Path, handle: IO[str]) -> Iterator[TrafficRecord]:
    for number, line in enumerate(handle, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TrafficError(f"{where}: not JSON ({exc.msg})") from None
        yield from_json(obj, where)


def _read_avro(path: Path, handle: IO[bytes]) -> Iterator[TrafficRecord]:
    try:
        reader = fastavro.reader(handle)
        schema = reader.writer_schema
        name = str(schema.get("name", "")) if isinstance(schema, dict) else ""
        if "." not in name and isinstance(schema, dict):
            name = f"{schema.get('namespace', '')}.{name}"
        if name not in _NAMES.values():
            raise TrafficError(
                f"{path}: holds {name or 'unnamed'} records, not Prediction, GroundTruth"
                " or ModelInput"
            )
        convert = FROM_AVRO[name][1]
        for index, datum in enumerate(reader):
            try:
                yield convert(datum)  # type: ignore[arg-type,misc]
            except (KeyError, TypeError, ValueError) as exc:
                raise TrafficError(f"{path}: record {index}: {exc}") from None
    except (ValueError, EOFError, OSError) as exc:
        if isinstance(exc, TrafficError):
            raise
        raise TrafficError(f"{path}: not a readable Avro container file ({exc})") from None


def read_traffic(paths: Iterable[Path | str]) -> list[TrafficRecord]:
    """Every record of ``paths`` (JSONL or Avro, detected by content), sorted by timestamp.

    The sort is stable, so records with equal timestamps keep their file order.
    """
    records: list[TrafficRecord] = []
    for raw in paths:
        path = Path(raw)
        try:
            with path.open("rb") as probe:
                is_avro = probe.read(4) == _AVRO_MAGIC
            if is_avro:
                with path.open("rb") as handle:
                    records += _read_avro(path, handle)
            else:
                with path.open(encoding="utf-8") as text:
                    records += _read_jsonl(path, text)
        except OSError as exc:
            raise TrafficError(f"cannot read {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise TrafficError(f"{path}: neither JSON Lines (UTF-8) nor Avro") from None
    records.sort(key=lambda r: r.timestamp_ms)
    return records


def write_jsonl(path: Path, records: Iterable[TrafficRecord]) -> int:
    """Write ``records`` as JSON Lines; returns how many."""
    with TrafficWriter(path) as writer:
        for record in records:
            writer.write(record)
        return writer.count


def write_avro(path: Path, records: Iterable[TrafficRecord]) -> int:
    """Write ``records`` (all of one type) to an Avro container file.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "labels.avro"
    >>> write_avro(path, [GroundTruth("r1", "m", 5, "1")])
    1
    >>> read_traffic([path])
    [GroundTruth(request_id='r1', model='m', timestamp_ms=5, value='1')]
    """
    items = list(records)
    kinds = {type(r) for r in items}
    if len(kinds) > 1:
        raise TrafficError("an Avro traffic file holds one record type; write two files")
    kind = kinds.pop() if kinds else Prediction
    schema = SchemaCatalogue.default().latest(_NAMES[kind]).expanded
    to_avro = TO_AVRO[kind][1]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        fastavro.writer(handle, fastavro.parse_schema(schema), (to_avro(r) for r in items))
    return len(items)


class TrafficWriter:
    """Appends records to a JSON Lines traffic log as they arrive (thread-confined).

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "traffic.jsonl"
    >>> with TrafficWriter(path) as writer:
    ...     writer.write(GroundTruth("r1", "m", 5, "1"))
    >>> read_traffic([path])[0].value
    '1'
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.count = 0
        self._handle = path.open("w", encoding="utf-8")

    def write(self, record: TrafficRecord) -> None:
        self._handle.write(json.dumps(to_json(record), separators=(",", ":")) + "\n")
        self.count += 1

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> TrafficWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
