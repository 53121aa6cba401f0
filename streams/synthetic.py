"""A seeded synthetic serving stream: requests, live and candidate predictions, late labels.

Used by the tests, the benchmarks and the demo. A candidate's quality is set directly
(accuracy for classifiers, error scale and bias for regressors), so a test knows which
verdict is right.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial

from streams.records import GroundTruth, ModelInput, Prediction, Role

__all__ = ["CandidateSpec", "Request", "classification_requests", "regression_requests"]

SEGMENTS = {"country": ("DE", "FR", "US"), "device": ("mobile", "desktop")}


@dataclass(frozen=True, slots=True)
class CandidateSpec:
    """How a simulated model behaves."""

    version: str
    accuracy: float = 0.9
    """Classifiers: probability of predicting the true class."""
    error_scale: float = 1.0
    """Regressors: standard deviation of the prediction error."""
    bias: float = 0.0
    """Regressors: mean of the prediction error."""
    latency_ms: float = 20.0
    error_rate: float = 0.0


@dataclass(frozen=True, slots=True)
class Request:
    """One served request with everything every model said about it."""

    input: ModelInput
    live: Prediction
    candidates: tuple[Prediction, ...]
    label: GroundTruth
    label_delay_ms: int


def _request_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _latency(rng: random.Random, mean: float) -> float:
    # Log-normal with the given mean: latency distributions are right-skewed.
    sigma = 0.3
    return float(mean * math.exp(rng.gauss(-sigma * sigma / 2, sigma)))


def _predict_class(
    rng: random.Random, truth: str, classes: Sequence[str], spec: CandidateSpec
) -> tuple[str, dict[str, float]]:
    correct = rng.random() < spec.accuracy
    predicted = truth if correct else rng.choice([c for c in classes if c != truth])
    confidence = 0.5 + 0.45 * rng.random()
    others = (1.0 - confidence) / (len(classes) - 1)
    return predicted, {c: (confidence if c == predicted else others) for c in classes}


def _predict_value(rng: random.Random, truth: float, spec: CandidateSpec) -> tuple[float, None]:
    return truth + rng.gauss(spec.bias, spec.error_scale), None


def _predictions(
    rng: random.Random,
    model_input: ModelInput,
    live: CandidateSpec,
    candidates: Sequence[CandidateSpec],
    answer: Callable[[CandidateSpec], tuple[float | str, dict[str, float] | None]],
) -> list[Prediction]:
    """What the live model and each candidate said about one request."""
    predictions = []
    for role, spec in [(Role.LIVE, live), *((Role.SHADOW, c) for c in candidates)]:
        failed = rng.random() < spec.error_rate
        value, probabilities = answer(spec)
        predictions.append(
            Prediction(
                model_input.request_id,
                model_input.model,
                spec.version,
                role,
                model_input.timestamp_ms,
                None if failed else value,
                None if failed else probabilities,
                _latency(rng, spec.latency_ms),
                "RuntimeError: simulated failure" if failed else None,
                model_input.segments,
            )
        )
    return predictions


def _request(
    rng: random.Random,
    model_input: ModelInput,
    predictions: list[Prediction],
    truth: float | str,
    max_label_delay_ms: int,
) -> Request:
    delay = rng.randrange(max_label_delay_ms + 1)
    label = GroundTruth(
        model_input.request_id, model_input.model, model_input.timestamp_ms + delay, truth
    )
    return Request(model_input, predictions[0], tuple(predictions[1:]), label, delay)


def classification_requests(
    n: int,
    live: CandidateSpec,
    candidates: Sequence[CandidateSpec],
    *,
    seed: int = 0,
    model: str = "churn",
    classes: Sequence[str] = ("0", "1"),
    start_ms: int = 1_764_201_600_000,
    interval_ms: int = 10,
    max_label_delay_ms: int = 60_000,
) -> Iterator[Request]:
    """``n`` requests; each model is right with its own accuracy, independently."""
    rng = random.Random(seed)
    for i in range(n):
        segments = {key: rng.choice(values) for key, values in SEGMENTS.items()}
        truth = rng.choice(classes)
        features = {f"x{j}": rng.gauss(0, 1) for j in range(5)}
        plan = {"plan": rng.choice(("basic", "pro"))}
        model_input = ModelInput(
            _request_id(rng), model, start_ms + i * interval_ms, features, plan, segments
        )
        predictions = _predictions(
            rng,
            model_input,
            live,
            candidates,
            partial(_predict_class, rng, truth, classes),
        )
        yield _request(rng, model_input, predictions, truth, max_label_delay_ms)


def regression_requests(
    n: int,
    live: CandidateSpec,
    candidates: Sequence[CandidateSpec],
    *,
    seed: int = 0,
    model: str = "eta",
    start_ms: int = 1_764_201_600_000,
    interval_ms: int = 10,
    max_label_delay_ms: int = 60_000,
) -> Iterator[Request]:
    """``n`` requests; each model's error is normal with its own bias and scale."""
    rng = random.Random(seed)
    for i in range(n):
        segments = {key: rng.choice(values) for key, values in SEGMENTS.items()}
        distance = rng.uniform(1, 20)
        truth = 5.0 + 3.0 * distance + rng.gauss(0, 2)
        model_input = ModelInput(
            _request_id(rng),
            model,
            start_ms + i * interval_ms,
            {"distance_km": distance},
            {},
            segments,
        )
        predictions = _predictions(
            rng,
            model_input,
            live,
            candidates,
            partial(_predict_value, rng, truth),
        )
        yield _request(rng, model_input, predictions, truth, max_label_delay_ms)
