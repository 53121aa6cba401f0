"""Codec speed and size against json.dumps / json.loads of the same model input.

    python bench/codec.py --json

Both sides run interleaved in the same process, several rounds each; the medians and
their ratios are reported (ratios > 1 mean our codec is faster, size_ratio < 1 smaller).
A shadow Prediction is measured the same way (``prediction_*`` keys), and both records
also through fastavro alone (``Codec(fast=False)``, ``*_fastavro_per_s``) to show what
the fast codecs of ``streams/codec/fast.py`` (generated from the ``.avsc``) gain.

Readers: ``readers`` says which readers ``Codec`` runs ("c": ``streams/codec/_cread.c``,
built by ``pip install``; "python": its fallback). ``*_decode_python_per_s`` time the
Python readers on the same bytes, for the ModelInput, the Prediction and a PAIRED
JoinEvent (the record join stage 2 reads), so ``*_decode_c_ratio`` is what the C readers
gain.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from streams.codec import Codec
from streams.codec.fastread import NATIVE_DECODERS, PYTHON_DECODERS
from streams.records import JoinEvent, JoinKind, ModelInput, Prediction, Record, Role


def model_input(seed: int = 7) -> ModelInput:
    rng = random.Random(seed)
    return ModelInput(
        request_id="0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        model="churn",
        timestamp_ms=1_764_201_600_000,
        numeric={f"num_{i:02d}": rng.uniform(-1e3, 1e3) for i in range(20)},
        categorical={
            f"cat_{i}": rng.choice(["DE", "FR", "mobile", "desktop", "gold", "basic"])
            for i in range(5)
        },
        segments={"country": "DE"},
    )


def as_json_dict(record: ModelInput) -> dict[str, Any]:
    """The same information as a plain dict, the way a hand-rolled JSON producer sends it."""
    return {
        "request_id": record.request_id,
        "model": record.model,
        "timestamp_ms": record.timestamp_ms,
        "numeric": dict(record.numeric),
        "categorical": dict(record.categorical),
        "segments": dict(record.segments),
    }


def prediction() -> Prediction:
    return Prediction(
        request_id="0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        model="churn",
        version="v2-rc1",
        role=Role.SHADOW,
        timestamp_ms=1_764_201_600_123,
        value="yes",
        probabilities={"yes": 0.8125, "no": 0.1875},
        latency_ms=0.734,
        segments={"country": "DE"},
    )


def prediction_json_dict(record: Prediction) -> dict[str, Any]:
    return {
        "request_id": record.request_id,
        "model": record.model,
        "version": record.version,
        "role": record.role.value,
        "timestamp_ms": record.timestamp_ms,
        "value": record.value,
        "probabilities": dict(record.probabilities or {}),
        "latency_ms": record.latency_ms,
        "error": record.error,
        "segments": dict(record.segments),
    }


def join_event() -> JoinEvent:
    """A PAIRED event of :func:`prediction` and its live twin, as stage 1 emits it."""
    shadow = prediction()
    live = Prediction(
        shadow.request_id,
        shadow.model,
        "v1",
        Role.LIVE,
        shadow.timestamp_ms - 3,
        "no",
        {"yes": 0.25, "no": 0.75},
        0.512,
        None,
        shadow.segments,
    )
    return JoinEvent(
        JoinKind.PAIRED,
        "churn-v2",
        shadow.request_id,
        shadow.timestamp_ms,
        live,
        shadow,
        shadow.segments,
        None,
    )


def rate(function: Callable[[], object], calls: int) -> float:
    """Calls per second of ``function`` over ``calls`` calls."""
    start = time.perf_counter()
    for _ in range(calls):
        function()
    return calls / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    codec, reference = Codec(), Codec(fast=False)
    cases: dict[str, tuple[Record, dict[str, Any]]] = {}  # prefix -> (record, JSON dict)
    cases[""] = (model_input(), as_json_dict(model_input()))
    cases["prediction_"] = (prediction(), prediction_json_dict(prediction()))
    runs: dict[str, list[float]] = {}
    sizes: dict[str, tuple[int, int]] = {}
    for prefix, (record, payload) in cases.items():
        avro_bytes = codec.encode(record)
        json_bytes = json.dumps(payload).encode()
        assert avro_bytes == reference.encode(record)  # the fast path writes fastavro's bytes
        assert codec.decode(avro_bytes) == reference.decode(avro_bytes) == record
        sizes[prefix] = (len(avro_bytes), len(json_bytes))
        timed: dict[str, Callable[[], object]] = {
            "avro_encode": lambda r=record: codec.encode(r),  # type: ignore[misc]
            "json_encode": lambda p=payload: json.dumps(p).encode(),  # type: ignore[misc]
            "avro_decode": lambda b=avro_bytes: codec.decode(b),  # type: ignore[misc]
            "json_decode": lambda b=json_bytes: json.loads(b),  # type: ignore[misc]
            "fastavro_encode": lambda r=record: reference.encode(r),  # type: ignore[misc]
            "fastavro_decode": lambda b=avro_bytes: reference.decode(b),  # type: ignore[misc]
        }
        read = PYTHON_DECODERS[f"dev.shadoweval.{type(record).__name__}"]
        timed["python_decode"] = lambda b=avro_bytes, r=read: r(b)  # type: ignore[misc]
        for _ in range(args.rounds):  # interleaved so machine noise hits all sides alike
            for name, function in timed.items():
                runs.setdefault(prefix + name, []).append(rate(function, args.calls))
    event_bytes = codec.encode(join_event())
    assert codec.decode(event_bytes) == reference.decode(event_bytes) == join_event()
    read_event = PYTHON_DECODERS["dev.shadoweval.JoinEvent"]
    event_timed: dict[str, Callable[[], object]] = {
        "join_event_avro_decode": lambda: codec.decode(event_bytes),
        "join_event_python_decode": lambda: read_event(event_bytes),
        "join_event_fastavro_decode": lambda: reference.decode(event_bytes),
    }
    for _ in range(args.rounds):
        for name, function in event_timed.items():
            runs.setdefault(name, []).append(rate(function, args.calls))
    medians = {name: statistics.median(values) for name, values in runs.items()}
    result: dict[str, Any] = {
        "bench": "codec",
        "record": "ModelInput, 20 numeric + 5 categorical features",
        "calls_per_round": args.calls,
        "rounds": args.rounds,
    }
    for prefix in cases:
        avro_size, json_size = sizes[prefix]
        result |= {
            f"{prefix}encode_per_s": round(medians[f"{prefix}avro_encode"]),
            f"{prefix}json_encode_per_s": round(medians[f"{prefix}json_encode"]),
            f"{prefix}decode_per_s": round(medians[f"{prefix}avro_decode"]),
            f"{prefix}json_decode_per_s": round(medians[f"{prefix}json_decode"]),
            f"{prefix}encode_ratio": round(
                medians[f"{prefix}avro_encode"] / medians[f"{prefix}json_encode"], 3
            ),
            f"{prefix}decode_ratio": round(
                medians[f"{prefix}avro_decode"] / medians[f"{prefix}json_decode"], 3
            ),
            f"{prefix}encode_fastavro_per_s": round(medians[f"{prefix}fastavro_encode"]),
            f"{prefix}decode_fastavro_per_s": round(medians[f"{prefix}fastavro_decode"]),
            f"{prefix}bytes": avro_size,
            f"{prefix}json_bytes": json_size,
            f"{prefix}size_ratio": round(avro_size / json_size, 3),
        }
    for prefix in ("", "prediction_", "join_event_"):
        result |= {
            f"{prefix}decode_python_per_s": round(medians[f"{prefix}python_decode"]),
            f"{prefix}decode_c_ratio": round(
                medians[f"{prefix}avro_decode"] / medians[f"{prefix}python_decode"], 3
            ),
        }
    result |= {
        "join_event_decode_per_s": round(medians["join_event_avro_decode"]),
        "join_event_decode_fastavro_per_s": round(medians["join_event_fastavro_decode"]),
        "join_event_bytes": len(event_bytes),
        "readers": "c" if NATIVE_DECODERS else "python",
    }
    result["prediction_record"] = "shadow Prediction, class label + 2 probabilities"
    result["note"] = (
        "decode yields the ModelInput / Prediction dataclass; json.loads yields a plain dict"
    )
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>20}: {value}")


if __name__ == "__main__":
    main()
