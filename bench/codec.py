"""Codec speed and size against json.dumps / json.loads of the same model input.

    python bench/codec.py --json

Both sides run interleaved in the same process, several rounds each; the medians and
their ratios are reported (ratios > 1 mean our codec is faster, size_ratio < 1 smaller).
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
from streams.records import ModelInput


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

    codec = Codec()
    record = model_input()
    payload = as_json_dict(record)
    avro_bytes = codec.encode(record)
    json_bytes = json.dumps(payload).encode()
    assert codec.decode(avro_bytes) == record

    runs: dict[str, list[float]] = {
        "avro_encode": [],
        "json_encode": [],
        "avro_decode": [],
        "json_decode": [],
    }
    for _ in range(args.rounds):  # interleaved so machine noise hits both sides alike
        runs["avro_encode"].append(rate(lambda: codec.encode(record), args.calls))
        runs["json_encode"].append(rate(lambda: json.dumps(payload).encode(), args.calls))
        runs["avro_decode"].append(rate(lambda: codec.decode(avro_bytes), args.calls))
        runs["json_decode"].append(rate(lambda: json.loads(json_bytes), args.calls))
    medians = {name: statistics.median(values) for name, values in runs.items()}
    result = {
        "bench": "codec",
        "record": "ModelInput, 20 numeric + 5 categorical features",
        "calls_per_round": args.calls,
        "rounds": args.rounds,
        "encode_per_s": round(medians["avro_encode"]),
        "json_encode_per_s": round(medians["json_encode"]),
        "decode_per_s": round(medians["avro_decode"]),
        "json_decode_per_s": round(medians["json_decode"]),
        "encode_ratio": round(medians["avro_encode"] / medians["json_encode"], 3),
        "decode_ratio": round(medians["avro_decode"] / medians["json_decode"], 3),
        "bytes": len(avro_bytes),
        "json_bytes": len(json_bytes),
        "size_ratio": round(len(avro_bytes) / len(json_bytes), 3),
        "note": "decode yields a ModelInput dataclass; json.loads yields a plain dict",
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>20}: {value}")


if __name__ == "__main__":
    main()
