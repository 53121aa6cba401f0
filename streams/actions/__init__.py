"""Act on verdicts, opt in: ``on_promote`` / ``on_reject`` in the experiments file (an MLflow
alias, a webhook), run once per experiment and decision by ``shadow-eval actions``, with
their outcomes on the alerts topic. MLflow is called over its REST API with httpx (no
``mlflow`` package needed)."""

from streams.actions.config import Action, ActionConfigError, actions_of, parse_mlflow_target
from streams.actions.mlflow import MLflowError, current_alias, set_alias
from streams.actions.runner import ActionRunner, outcome_alert

__all__ = [
    "Action",
    "ActionConfigError",
    "ActionRunner",
    "MLflowError",
    "actions_of",
    "current_alias",
    "outcome_alert",
    "parse_mlflow_target",
    "set_alias",
]
