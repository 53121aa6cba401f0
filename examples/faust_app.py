"""The shadow-eval hook in a faust-streaming app: an agent that serves predictions on a stream.

Loan applications arrive as JSON events ``{"request_id": ..., "features": {...}}`` on
``<prefix>.app.requests``; the ``serve`` agent scores each one, answers on
``<prefix>.app.decisions`` and publishes inputs and live prediction to shadow-eval through the
hook, under the request id carried by the event (so the candidates, the join and the labels all
agree on it). The outcome of a loan is known months later, as an event
``{"request_id": ..., "defaulted": true}`` on ``<prefix>.app.outcomes``; the ``label`` agent
turns it into shadow-eval's ground truth (1.0 or 0.0) with
``publisher.label(request_id, value)``. Any process that knows the request id can label it the
same way; nothing else needs to be kept.

Needs the ``faust`` extra (``pip install 'shadow-eval[faust]'``). Run a worker::

    SHADOW_KAFKA_BOOTSTRAP=127.0.0.1:9092 python examples/faust_app.py worker -l info
"""

from __future__ import annotations

from typing import Any

import faust

from streams.hook import ShadowPublisher, shadow_predict
from streams.settings import Settings, load_settings


def score(features: dict[str, Any]) -> float:
    """The live model: a probability of default from income, debt and history."""
    ratio = float(features["debt"]) / max(float(features["income"]), 1.0)
    late = 0.1 * float(features["late_payments"])
    return round(min(1.0, 0.5 * ratio + late), 6)


def build(settings: Settings | None = None) -> tuple[faust.App, ShadowPublisher]:
    """The faust app and the hook's publisher (closed, after a flush, when the process exits)."""
    settings = settings or load_settings()
    publisher = ShadowPublisher(settings, model="loan-default", version="v1")
    prefix = settings.topic_prefix
    app = faust.App(
        f"{prefix}-loan-scorer",
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        web_enabled=False,
        topic_partitions=settings.partitions,
        value_serializer="json",
    )
    requests = app.topic(f"{prefix}.app.requests")
    decisions = app.topic(f"{prefix}.app.decisions")
    outcomes = app.topic(f"{prefix}.app.outcomes")

    # The event carries the request id: the hook publishes under it instead of making one.
    @shadow_predict(
        publisher,
        features=lambda event: event["features"],
        request_id=lambda event: str(event["request_id"]),
    )
    def predict(event: dict[str, Any]) -> float:
        return score(event["features"])

    @app.agent(requests)
    async def serve(stream: faust.StreamT[dict[str, Any]]) -> None:
        async for event in stream:
            probability = predict(event)  # the hook only queues: it never blocks the loop
            decision = {"request_id": event["request_id"], "default_probability": probability}
            await decisions.send(key=str(event["request_id"]), value=decision)

    @app.agent(outcomes)
    async def label(stream: faust.StreamT[dict[str, Any]]) -> None:
        async for outcome in stream:
            publisher.label(str(outcome["request_id"]), 1.0 if outcome["defaulted"] else 0.0)

    return app, publisher


if __name__ == "__main__":
    app, _publisher = build()
    app.main()
