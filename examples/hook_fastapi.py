"""A FastAPI serving app with the shadow-eval hook (run: ``uvicorn examples.hook_fastapi:app``).

Three additions to a plain app: the ``lifespan`` that owns the publisher, the
``Publisher`` dependency, and one ``with shadow.track(...)`` around the model call.
The response carries the request id, so the label can be published later (``/label``).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from streams.hook import ShadowPublisher
from streams.hook.fastapi import Publisher, shadow_lifespan
from streams.settings import Settings, load_settings


class ChurnRequest(BaseModel):
    features: dict[str, Any]
    country: str = "unknown"


class ChurnResponse(BaseModel):
    request_id: str
    churn: str
    probability: float


class LabelRequest(BaseModel):
    request_id: str
    churned: bool


def live_model(features: dict[str, Any]) -> tuple[str, dict[str, float]]:
    """Stand-in for the real model: a class label and class probabilities."""
    if features.get("tenure_months") is None:
        raise ValueError("tenure_months is required")
    p = 0.9 if float(features["tenure_months"]) < 6 else 0.2
    return ("yes" if p >= 0.5 else "no"), {"yes": p, "no": 1.0 - p}


def create_app(settings: Settings | None = None, **publisher_options: Any) -> FastAPI:
    """The app; ``settings`` default to ``SHADOW_*`` environment variables."""
    settings = settings or load_settings()

    def make_publisher() -> ShadowPublisher:
        return ShadowPublisher(settings, model="churn", version="v1", **publisher_options)

    app = FastAPI(lifespan=shadow_lifespan(make_publisher))

    @app.post("/predict")
    def predict(body: ChurnRequest, shadow: Publisher) -> ChurnResponse:
        with shadow.track(body.features, segments={"country": body.country}) as tracked:
            label, proba = live_model(body.features)  # an exception is recorded, then raised
            tracked.prediction, tracked.probabilities = label, proba
        return ChurnResponse(request_id=tracked.request_id, churn=label, probability=proba["yes"])

    @app.post("/label")
    def label(body: LabelRequest, shadow: Publisher) -> dict[str, bool]:
        return {"accepted": shadow.label(body.request_id, "yes" if body.churned else "no")}

    return app


app = create_app()
