"""Shadow workers: run candidate models on production inputs and publish their predictions.

The pure parts (model adapter, batch assembly, input checks) import no Kafka; the loop in
:mod:`streams.worker.loop` is the only Kafka edge. ``shadow-eval worker`` is the CLI.
"""

from streams.worker.config import WorkerConfig
from streams.worker.loading import ModelLoadError, UserCodeError, load_model, load_model_file
from streams.worker.loop import ShadowWorker, WorkerError
from streams.worker.metrics import WorkerMetrics
from streams.worker.model import ModelAdapter, Outcome

__all__ = [
    "ModelAdapter",
    "ModelLoadError",
    "Outcome",
    "ShadowWorker",
    "UserCodeError",
    "WorkerConfig",
    "WorkerError",
    "WorkerMetrics",
    "load_model",
    "load_model_file",
]
