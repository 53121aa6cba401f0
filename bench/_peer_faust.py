"""Stage 1 written the idiomatic faust-streaming way: one agent on the three input topics and a
table keyed by request id; PAIRED when live and candidate are both there, LABELLED when the
label joins a pair. Run by bench/peers.py:

    python bench/_peer_faust.py BOOTSTRAP PREFIX PARTITIONS OUTPUT_TOPIC worker -l warn
"""

from __future__ import annotations

import sys
from typing import Any

import faust

from streams.codec import Codec
from streams.records import GroundTruth, Prediction, Role


def build(bootstrap: str, prefix: str, partitions: int, output: str) -> faust.App:
    app = faust.App(
        f"{prefix}-faust-peer",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        web_enabled=False,
        topic_partitions=partitions,
    )
    codec = Codec()
    inputs = app.topic(
        f"{prefix}.predictions.live",
        f"{prefix}.predictions.shadow",
        f"{prefix}.ground_truth",
        key_serializer="raw",
        value_serializer="raw",
    )
    events = app.topic(output, key_serializer="raw", value_serializer="json")
    pending = app.Table("pending", default=dict, partitions=partitions)

    @app.agent(inputs)
    async def pair(stream: faust.StreamT[bytes]) -> None:
        async for value in stream:
            record = codec.decode(value)
            rid = record.request_id
            state: dict[str, Any] = dict(pending[rid])
            if isinstance(record, GroundTruth):
                state["label"] = str(record.value)
            elif isinstance(record, Prediction):
                side = "live" if record.role is Role.LIVE else "shadow"
                state[side] = str(record.value)
            if "paired" not in state and "live" in state and "shadow" in state:
                state["paired"] = True
                await events.send(key=rid.encode(), value={"kind": "PAIRED", "id": rid})
            if state.get("paired") and "label" in state and "labelled" not in state:
                state["labelled"] = True
                await events.send(key=rid.encode(), value={"kind": "LABELLED", "id": rid})
            pending[rid] = state

    return app


if __name__ == "__main__":
    bootstrap, prefix, partitions, output = sys.argv[1:5]
    del sys.argv[1:5]
    build(bootstrap, prefix, int(partitions), output).main()
