"""The validity gate: whether a prediction or a label may reach the statistics, and why not.

The one place that decides it, for the streaming stages and replay alike
(:mod:`streams.join.observe` asks it for every side of every join event). A prediction
that answered (no ``error``) is **invalid** when

* ``missing``: it carries no value;
* ``nonfinite``: its value, or one of its probabilities, is NaN or infinite (a regression
  value also when so large, over :data:`LARGEST_VALUE` (about 2.9e76), that a statistic
  of its squared error would overflow);
* ``wrong_type``: its value does not fit the experiment's task (text for a regression);
* ``unknown_class``: its class, or a class of its probability vector, is not one of the
  experiment's ``classes`` (when it lists them);
* ``bad_probabilities``: its probability vector is empty, has a negative entry, or does
  not sum to 1 within :data:`PROBABILITY_TOLERANCE`.

A label is invalid when missing, non-finite, text for a regression or an unknown class.
An invalid side is left out of every statistic that needs its value (a pair needs both
sides), counted per experiment, version and reason, and becomes the 0/1 metric
``invalid`` of the pair, which the ``invalid_predictions`` rule and the verdict judge.
A prediction that failed (``error`` set) is an error, not an invalid prediction.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from streams.records import Label, Prediction
from streams.stats.metrics import INVALID as INVALID_METRIC

__all__ = [
    "INVALID_METRIC",
    "LARGEST_VALUE",
    "PROBABILITY_TOLERANCE",
    "REASONS",
    "class_text",
    "label_problem",
    "prediction_problem",
]

REASONS = ("missing", "nonfinite", "wrong_type", "unknown_class", "bad_probabilities")
PROBABILITY_TOLERANCE = 0.01
"""How far from 1 a probability vector may sum (rounding in a model's softmax, float32)."""
LARGEST_VALUE = 2.0**254
"""The largest regression value or label (about 2.9e76): with both sides within it, a
squared error is at most 2**510, so the square of a difference of two (the statistics
square every metric's difference) stays finite."""


def class_text(value: object) -> str:
    """A class label as text, so that 1, 1.0 and "1" name the same class.

    Examples
    --------
    >>> class_text(1.0), class_text("1"), class_text(2.5)
    ('1', '1', '2.5')
    """
    if type(value) is str:
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _number_problem(value: object) -> str | None:
    if type(value) is float or (isinstance(value, int) and not isinstance(value, bool)):
        # Comparisons are False for NaN, so NaN and the infinities land on "nonfinite".
        return None if -LARGEST_VALUE <= value <= LARGEST_VALUE else "nonfinite"
    return "wrong_type"


def _class_problem(value: object, classes: Collection[str] | None) -> str | None:
    if type(value) is float and value - value != 0.0:
        return "nonfinite"
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        return "wrong_type"
    if classes is not None and class_text(value) not in classes:
        return "unknown_class"
    return None


def _probabilities_problem(
    probabilities: Mapping[str, float], classes: Collection[str] | None
) -> str | None:
    total = lowest = 0.0
    try:
        for p in probabilities.values():  # runs for both sides of every event: kept lean
            total += p
            if p < lowest:
                lowest = p
    except TypeError:
        return "wrong_type"
    if total - total != 0.0:  # nan unless every entry is finite (inf - inf is nan too)
        return "nonfinite"
    if lowest < 0.0 or not -PROBABILITY_TOLERANCE <= total - 1.0 <= PROBABILITY_TOLERANCE:
        return "bad_probabilities"
    if classes is not None and not all(name in classes for name in probabilities):
        return "unknown_class"
    return None


def prediction_problem(
    prediction: Prediction, task: str, classes: Collection[str] | None = None
) -> str | None:
    """Why ``prediction`` is invalid for an experiment of ``task`` (one of :data:`REASONS`),
    or None when it is valid or failed (an error prediction is counted as an error).

    Examples
    --------
    >>> from streams.records import Prediction, Role
    >>> def p(value, probabilities=None):
    ...     return Prediction("r1", "m", "v2", Role.SHADOW, 0, value, probabilities)
    >>> prediction_problem(p(1.5), "regression"), prediction_problem(p("1.5"), "regression")
    (None, 'wrong_type')
    >>> prediction_problem(p(float("nan")), "regression")
    'nonfinite'
    >>> prediction_problem(p("yes", {"yes": 0.7, "no": 0.7}), "binary")
    'bad_probabilities'
    >>> prediction_problem(p("maybe"), "binary", classes={"yes", "no"})
    'unknown_class'
    """
    if prediction.error is not None:
        return None
    value = prediction.value
    if task == "regression":
        if type(value) is float and -LARGEST_VALUE <= value <= LARGEST_VALUE:
            return None  # the common case first: this runs for both sides of every event
    elif type(value) is str and (classes is None or value in classes):
        probabilities = prediction.probabilities
        return None if probabilities is None else _probabilities_problem(probabilities, classes)
    if value is None:
        return "missing"
    problem = _number_problem(value) if task == "regression" else _class_problem(value, classes)
    if problem is None and prediction.probabilities is not None and task != "regression":
        problem = _probabilities_problem(prediction.probabilities, classes)
    return problem


def label_problem(
    label: Label | None, task: str, classes: Collection[str] | None = None
) -> str | None:
    """Why ``label`` cannot judge a prediction of ``task``, or None when it can.

    Examples
    --------
    >>> label_problem(2.0, "regression"), label_problem("2", "regression")
    (None, 'wrong_type')
    >>> label_problem(float("inf"), "binary"), label_problem(None, "multiclass")
    ('nonfinite', 'missing')
    """
    if label is None:
        return "missing"
    if task == "regression":
        return _number_problem(label)
    return _class_problem(label, classes)
