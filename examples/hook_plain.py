"""The shadow-eval hook in a plain Python service: a decorator on the predict function.

Run against a broker: ``SHADOW_KAFKA_BOOTSTRAP=127.0.0.1:9092 python examples/hook_plain.py``.
"""

from __future__ import annotations

from typing import Any

from streams.hook import ShadowPublisher, current_request_id, shadow_predict
from streams.settings import Settings, load_settings


def build(settings: Settings | None = None, **options: Any) -> tuple[ShadowPublisher, Any]:
    """A publisher and the decorated predict function of a house-price regressor."""
    publisher = ShadowPublisher(settings or load_settings(), model="price", version="v3", **options)

    @shadow_predict(publisher, segments=lambda features: {"city": str(features.get("city"))})
    def predict(features: dict[str, Any]) -> float:
        return 1000.0 * float(features["rooms"]) + 3.5 * float(features["area_m2"])

    return publisher, predict


def main() -> None:
    publisher, predict = build()
    with publisher:  # flushes and closes on exit
        price = predict({"rooms": 3, "area_m2": 72.0, "city": "Lyon", "amenities": ["lift"]})
        request_id = current_request_id()  # the id the hook made for that call
        print(f"predicted {price:.0f} for request {request_id}")
        # Later, wherever the sale price becomes known (possibly another process):
        if request_id is not None:
            publisher.label(request_id, 265_000.0)
        print(publisher.counters)


if __name__ == "__main__":
    main()
