"""Per-request metric values of one join event, as the statistics core takes them.

Label-free (PAIRED): latency, error and timeout of each side, and the predictions themselves
(numeric ones as a distribution, class labels as categories). With the label (LABELLED):
absolute and squared error for regression; correctness, log loss and (binary) Brier score
for classifiers. A loss needs both sides to have answered: a failed prediction counts in
``error``, not as an arbitrarily bad loss.
"""

from __future__ import annotations

import math

from streams.join.experiments import Experiment
from streams.records import JoinEvent, JoinKind, Prediction
from streams.stats import Observation

__all__ = ["observation"]

_LOG_LOSS_FLOOR = 1e-15


def observation(event: JoinEvent, experiment: Experiment) -> Observation | None:
    """The values ``event`` contributes, or None (EXPIRED events only count)."""
    live, candidate = event.live, event.candidate
    if live is None or candidate is None or event.kind is JoinKind.EXPIRED:
        return None
    paired: dict[str, tuple[float, float]] = {}
    categorical: dict[str, tuple[str, str]] = {}
    if event.kind is JoinKind.PAIRED:
        paired["latency_ms"] = (live.latency_ms, candidate.latency_ms)
        paired["error"] = (float(live.error is not None), float(candidate.error is not None))
        paired["timeout"] = (float(live.error == "timeout"), float(candidate.error == "timeout"))
        if live.value is not None and candidate.value is not None:
            if experiment.task == "regression":
                numbers = _numbers(live.value, candidate.value)
                if numbers is not None:
                    paired["prediction"] = numbers
            else:
                categorical["predicted_class"] = (str(live.value), str(candidate.value))
    elif event.label is not None and live.value is not None and candidate.value is not None:
        if experiment.task == "regression":
            _regression_losses(paired, live, candidate, event.label)
        else:
            _classification_losses(paired, live, candidate, str(event.label), experiment)
    return Observation(event.timestamp_ms, event.segments, paired, categorical)


def _numbers(a: object, b: object) -> tuple[float, float] | None:
    if isinstance(a, float | int) and isinstance(b, float | int):
        return float(a), float(b)
    return None


def _regression_losses(
    paired: dict[str, tuple[float, float]], live: Prediction, candidate: Prediction, label: object
) -> None:
    numbers = _numbers(live.value, candidate.value)
    if numbers is None or not isinstance(label, float | int):
        return
    errors = (numbers[0] - label, numbers[1] - label)
    paired["abs_error"] = (abs(errors[0]), abs(errors[1]))
    paired["squared_error"] = (errors[0] ** 2, errors[1] ** 2)


def _classification_losses(
    paired: dict[str, tuple[float, float]],
    live: Prediction,
    candidate: Prediction,
    label: str,
    experiment: Experiment,
) -> None:
    paired["correct"] = (float(str(live.value) == label), float(str(candidate.value) == label))
    if live.probabilities is None or candidate.probabilities is None:
        return
    paired["log_loss"] = (_log_loss(live, label), _log_loss(candidate, label))
    positive = experiment.positive_class
    if experiment.task == "binary" and positive is not None:
        outcome = float(label == positive)
        paired["brier"] = (
            (_probability(live, positive) - outcome) ** 2,
            (_probability(candidate, positive) - outcome) ** 2,
        )


def _probability(prediction: Prediction, label: str) -> float:
    assert prediction.probabilities is not None
    return float(prediction.probabilities.get(label, 0.0))


def _log_loss(prediction: Prediction, label: str) -> float:
    return -math.log(min(max(_probability(prediction, label), _LOG_LOSS_FLOOR), 1.0))
