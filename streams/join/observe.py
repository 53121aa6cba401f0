"""Per-request metric values of one join event, as the statistics core takes them.

Label-free (PAIRED): latency, error and timeout of each side, what each prediction cost
where both sides measured it (``cpu_ms``, ``worker_memory_mb``, ``load_s``), and the
predictions themselves (numeric ones as a distribution, class labels as categories). With
the label (LABELLED): absolute and squared error for regression; correctness, log loss and
(binary) Brier score for classifiers. A loss needs both sides to have answered: a failed
prediction counts in ``error``, not as an arbitrarily bad loss.

Downstream outcomes (see :mod:`streams.join.experiments`): on PAIRED the user's decision
function gives the categorical metric ``decision``; on LABELLED each KPI function gives
paired business metrics. The ``proxy`` function gives, on PAIRED and LABELLED alike, the
label-free proxies ``<metric>~proxy`` of the metrics an experiment lists in ``proxies`` (their
prediction-powered estimate pairs them with the true metric when the label comes). A user
function that raises (or returns something unusable)
is reported in :attr:`Observed.errors` as a :class:`Failure` (counted ``errors:<path>``,
or ``timeouts:<path>`` past its deadline ``[join] user_timeout_s``, with the exception's
first line); that request's other metrics stand. User
functions run on a few threads of their own (:meth:`UserFunction.call`): a hung one never
holds the stage, its snapshots or its alerts.

Invalid predictions and labels (:mod:`streams.join.validity`, the one gate) never reach
a statistic that needs their value; each is reported in :attr:`Observed.invalid`, and
every PAIRED event gives the 0/1 metric ``invalid`` of each side.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from streams.callpool import PoolExhausted, Timeout
from streams.join.experiments import Experiment, _exception_line
from streams.join.validity import INVALID_METRIC, class_text, label_problem, prediction_problem
from streams.records import JoinEvent, JoinKind, ModelInput, Prediction
from streams.stats import PROXY, Observation

__all__ = ["Failure", "Observed", "class_text", "metric_values", "observation"]


@dataclass(frozen=True, slots=True)
class Observed:
    """The statistics' view of one join event, and the user functions that failed on it."""

    observation: Observation | None
    errors: tuple[Failure, ...] = ()
    invalid: tuple[str, ...] = ()
    """``<version>:<reason>`` of each invalid prediction, ``label:<reason>`` of a label."""


ERRORS, TIMEOUTS = "errors:", "timeouts:"
"""Counter prefixes of a user function's path: it raised (or returned no numbers), or it
missed its deadline (``[join] user_timeout_s``) or all its threads were stuck."""


class Failure(NamedTuple):
    """A user function that failed on one request: the counter it goes to
    (``errors:<module:function>`` or ``timeouts:...``) and one line saying why."""

    counter: str
    detail: str


_LOG_LOSS_FLOOR = 1e-15
_PAIRED, _EXPIRED = JoinKind.PAIRED, JoinKind.EXPIRED  # an enum member lookup is slow

Paired = dict[str, tuple[float, float]]
Categorical = dict[str, tuple[str, str]]


def observation(event: JoinEvent, experiment: Experiment) -> Observed:
    """The values ``event`` contributes (None for EXPIRED events, which only count)."""
    found = metric_values(event, experiment)
    if found is None:
        return Observed(None)
    paired, categorical, errors, invalid = found
    return Observed(
        Observation(event.timestamp_ms, event.segments, paired, categorical),
        tuple(errors),
        tuple(invalid),
    )


def metric_values(
    event: JoinEvent, experiment: Experiment
) -> tuple[Paired, Categorical, list[Failure], list[str]] | None:
    """What :func:`observation` holds, unwrapped: the paired and categorical metric values,
    the failed user functions' paths and the invalid sides (None for EXPIRED events and a
    missing side)."""
    live, candidate = event.live, event.candidate
    kind = event.kind
    if live is None or candidate is None or kind is _EXPIRED:
        return None
    paired: Paired = {}
    categorical: Categorical = {}
    errors: list[Failure] = []
    invalid: list[str] = []
    task, classes = experiment.task, experiment.classes
    live_problem = prediction_problem(live, task, classes)
    candidate_problem = prediction_problem(candidate, task, classes)
    valid = live_problem is None and candidate_problem is None
    # Both sides answered with a value: an error prediction counts as an error, and a
    # value it carries anyway (a hostile record) is never scored; the gate does not
    # look at it.
    scored = (
        valid
        and live.error is None
        and candidate.error is None
        and live.value is not None
        and candidate.value is not None
    )
    if kind is _PAIRED:
        if not valid:
            if live_problem is not None:
                invalid.append(f"{live.version}:{live_problem}")
            if candidate_problem is not None:
                invalid.append(f"{candidate.version}:{candidate_problem}")
        paired[INVALID_METRIC] = (
            0.0 if live_problem is None else 1.0,
            0.0 if candidate_problem is None else 1.0,
        )
        live_error, candidate_error = live.error, candidate.error
        paired["latency_ms"] = (live.latency_ms, candidate.latency_ms)
        paired["error"] = (
            0.0 if live_error is None else 1.0,
            0.0 if candidate_error is None else 1.0,
        )
        paired["timeout"] = (
            1.0 if live_error == "timeout" else 0.0,
            1.0 if candidate_error == "timeout" else 0.0,
        )
        _costs(paired, live, candidate)
        if scored:
            if experiment.task == "regression":
                numbers = _numbers(live.value, candidate.value)
                if numbers is not None:
                    paired["prediction"] = numbers
            else:
                categorical["predicted_class"] = (
                    class_text(live.value),
                    class_text(candidate.value),
                )
            if experiment.decision is not None:
                outcomes = _decide(experiment, event.inputs, live, candidate, errors)
                if outcomes is not None:
                    categorical["decision"] = (str(outcomes[0]), str(outcomes[1]))
            if experiment.proxy is not None:
                _proxies(experiment, event.inputs, live, candidate, paired, errors)
    elif (problem := label_problem(event.label, task, classes)) is not None:
        invalid.append(f"label:{problem}")
    elif scored:
        if experiment.task == "regression":
            _regression_losses(paired, live, candidate, event.label)
        else:
            _classification_losses(paired, live, candidate, class_text(event.label), experiment)
        if experiment.decision is not None:
            # Decision errors were counted on the PAIRED event already.
            outcomes = _decide(experiment, event.inputs, live, candidate, [])
            if outcomes is not None:
                _kpis(experiment, event.inputs, outcomes, event.label, paired, errors)
        if experiment.proxy is not None:
            _proxies(experiment, event.inputs, live, candidate, paired, [])  # counted on PAIRED
    return paired, categorical, errors, invalid


def _costs(paired: Paired, live: Prediction, candidate: Prediction) -> None:
    """The cost metrics both sides measured (Prediction version 2; version 1 has none):
    ``cpu_ms`` of the call, ``worker_memory_mb`` (the peak resident memory of the process
    that made the prediction) and ``load_s`` (its model's load time)."""
    if live.cpu_ms is not None and candidate.cpu_ms is not None:
        paired["cpu_ms"] = (live.cpu_ms, candidate.cpu_ms)
    if live.worker_peak_mb is not None and candidate.worker_peak_mb is not None:
        paired["worker_memory_mb"] = (live.worker_peak_mb, candidate.worker_peak_mb)
    if live.load_s is not None and candidate.load_s is not None:
        paired["load_s"] = (live.load_s, candidate.load_s)


def _decide(
    experiment: Experiment,
    inputs: ModelInput | None,
    live: Prediction,
    candidate: Prediction,
    errors: list[Failure],
) -> tuple[Any, Any] | None:
    decision = experiment.decision
    if decision is None or inputs is None or live.value is None or candidate.value is None:
        return None
    request = inputs.feature_dict()
    try:
        live_outcome, candidate_outcome = decision.call(
            (request, live.value), (request, candidate.value)
        )
    except (Timeout, PoolExhausted) as exc:
        errors.append(Failure(TIMEOUTS + decision.path, str(exc)))
        return None
    except Exception as exc:  # user code: any failure is counted, never fatal
        errors.append(Failure(ERRORS + decision.path, _exception_line(exc)))
        return None
    return live_outcome, candidate_outcome


def _kpis(
    experiment: Experiment,
    inputs: ModelInput | None,
    outcomes: tuple[Any, Any],
    label: Any,
    paired: dict[str, tuple[float, float]],
    errors: list[Failure],
) -> None:
    if inputs is None:
        return
    request = inputs.feature_dict()
    for kpi in experiment.kpis:
        try:
            live_values, candidate_values = kpi.call(
                (request, outcomes[0], label), (request, outcomes[1], label)
            )
            values = {
                name: (float(live_values[name]), float(candidate_values[name]))
                for name in live_values
            }
        except (Timeout, PoolExhausted) as exc:
            errors.append(Failure(TIMEOUTS + kpi.path, str(exc)))
            continue
        except Exception as exc:  # user code: raised, or returned no numbers for both sides
            errors.append(Failure(ERRORS + kpi.path, _exception_line(exc)))
            continue
        if all(math.isfinite(a) and math.isfinite(b) for a, b in values.values()):
            paired.update(values)
        else:
            errors.append(Failure(ERRORS + kpi.path, f"returned non-finite numbers {values}"))


def _proxies(
    experiment: Experiment,
    inputs: ModelInput | None,
    live: Prediction,
    candidate: Prediction,
    paired: dict[str, tuple[float, float]],
    errors: list[Failure],
) -> None:
    """The proxy function's values, as ``<metric>~proxy`` pairs (only metrics it is for)."""
    proxy = experiment.proxy
    if proxy is None or inputs is None or live.value is None or candidate.value is None:
        return
    wanted = experiment.rules.proxies
    try:
        (values,) = proxy.call((inputs.feature_dict(), live.value, candidate.value))
        found = {m: (float(values[m][0]), float(values[m][1])) for m in wanted if m in values}
    except (Timeout, PoolExhausted) as exc:
        errors.append(Failure(TIMEOUTS + proxy.path, str(exc)))
        return
    except Exception as exc:  # user code: any failure is counted, never fatal
        errors.append(Failure(ERRORS + proxy.path, _exception_line(exc)))
        return
    for metric, pair in found.items():
        paired[metric + PROXY] = pair  # non-finite ones are refused and counted downstream


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
    paired["correct"] = (
        1.0 if class_text(live.value) == label else 0.0,
        1.0 if class_text(candidate.value) == label else 0.0,
    )
    live_p, candidate_p = live.probabilities, candidate.probabilities
    if live_p is None or candidate_p is None:
        return
    paired["log_loss"] = (_log_loss(live_p, label), _log_loss(candidate_p, label))
    positive = experiment.positive_class
    if positive is not None and experiment.task == "binary":
        outcome = 1.0 if label == positive else 0.0
        paired["brier"] = (
            (float(live_p.get(positive, 0.0)) - outcome) ** 2,
            (float(candidate_p.get(positive, 0.0)) - outcome) ** 2,
        )


def _log_loss(probabilities: Mapping[str, float], label: str) -> float:
    p = float(probabilities.get(label, 0.0))
    p = _LOG_LOSS_FLOOR if p < _LOG_LOSS_FLOOR else p  # max(p, floor), NaN kept
    return -math.log(1.0 if p > 1.0 else p)  # min(p, 1)
