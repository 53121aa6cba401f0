"""Stage 1 written the idiomatic quixstreams way: a StreamingDataFrame over the three input
topics (concatenated), a stateful function keeping each request's sides in the state store,
exactly-once processing; PAIRED when live and candidate are both there, LABELLED when the
label joins a pair. Runs in its own venv (quixstreams pins an older confluent-kafka); started
by bench/peers.py:

    python bench/_peer_quix.py BOOTSTRAP PREFIX STATE_DIR OUTPUT_TOPIC
"""

from __future__ import annotations

import sys
from typing import Any

from quixstreams import Application, State

from streams.codec import Codec
from streams.records import GroundTruth, Prediction, Role


def main(bootstrap: str, prefix: str, state_dir: str, output: str) -> None:
    app = Application(
        broker_address=bootstrap,
        consumer_group=f"{prefix}-quix-peer",
        auto_offset_reset="earliest",
        processing_guarantee="exactly-once",
        state_dir=state_dir,
        use_changelog_topics=True,
    )
    codec = Codec()
    frames = [
        app.dataframe(app.topic(name, key_deserializer="bytes", value_deserializer="bytes"))
        for name in (
            f"{prefix}.predictions.live",
            f"{prefix}.predictions.shadow",
            f"{prefix}.ground_truth",
        )
    ]
    events = app.topic(output, key_serializer="bytes", value_serializer="json")

    def pair(value: bytes, state: State) -> list[dict[str, Any]]:
        record = codec.decode(value)
        rid = record.request_id
        sides: dict[str, Any] = state.get("sides", {})
        if isinstance(record, GroundTruth):
            sides["label"] = str(record.value)
        elif isinstance(record, Prediction):
            sides["live" if record.role is Role.LIVE else "shadow"] = str(record.value)
        out = []
        if "paired" not in sides and "live" in sides and "shadow" in sides:
            sides["paired"] = True
            out.append({"kind": "PAIRED", "id": rid})
        if sides.get("paired") and "label" in sides and "labelled" not in sides:
            sides["labelled"] = True
            out.append({"kind": "LABELLED", "id": rid})
        state.set("sides", sides)
        return out

    sdf = frames[0].concat(frames[1]).concat(frames[2])
    sdf = sdf.apply(pair, stateful=True, expand=True)
    sdf.to_topic(events)
    app.run()


if __name__ == "__main__":
    main(*sys.argv[1:5])
