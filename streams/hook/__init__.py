"""The producer hook: what a serving app adds to publish inputs, live predictions and labels.

Examples
--------
>>> from streams.hook import ShadowPublisher, shadow_predict
>>> publisher = ShadowPublisher(model="churn", version="v1")  # doctest: +SKIP
>>> @shadow_predict(publisher)  # doctest: +SKIP
... def predict(features: dict) -> float:
...     return 0.83

The FastAPI helpers live in :mod:`streams.hook.fastapi` (needs the ``fastapi`` extra).
"""

from streams.hook.features import Privacy, split_features
from streams.hook.ids import uuid7, uuid7_time_ms
from streams.hook.metrics import HookCounters
from streams.hook.publisher import ShadowPublisher, producer_config
from streams.hook.sampling import Sampler, sample_point
from streams.hook.wrap import Tracked, current_request_id, shadow_predict

__all__ = [
    "HookCounters",
    "Privacy",
    "Sampler",
    "ShadowPublisher",
    "Tracked",
    "current_request_id",
    "producer_config",
    "sample_point",
    "shadow_predict",
    "split_features",
    "uuid7",
    "uuid7_time_ms",
]
