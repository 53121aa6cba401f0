"""``on_promote`` / ``on_reject`` in the experiments file: what to do when a verdict comes.

.. code-block:: toml

    [[experiments]]
    name = "churn-v3"
    model = "churn"
    live_version = "2"
    candidate = "3"               # the candidate's registered MLflow version
    on_promote = [
      {mlflow = "mlflow://models/churn@champion", tracking_uri = "http://mlflow:5000",
       dry_run = false},         # dry_run is true until the user turns it off
      {webhook = "https://ci.example.com/hooks/promote"},
    ]
    on_reject = [{webhook = "https://hooks.slack.com/services/..."}]

An MLflow action points the alias at ``version`` (default: the experiment's candidate).
A webhook gets the verdict as JSON, the alerts webhook's payload.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from streams.records import Decision

__all__ = ["Action", "ActionConfigError", "actions_of", "parse_mlflow_target"]

TRIGGERS = {"on_promote": Decision.PROMOTE, "on_reject": Decision.REJECT}
MLFLOW_PREFIX = "mlflow://models/"


class ActionConfigError(ValueError):
    """An ``on_promote`` / ``on_reject`` entry is malformed; the message names it."""


@dataclass(frozen=True, slots=True)
class Action:
    """One thing to do for one experiment's decision."""

    experiment: str
    decision: Decision
    kind: Literal["mlflow", "webhook"]
    target: str
    """``mlflow://models/NAME@ALIAS`` or the webhook URL."""
    version: str = ""
    """The registered model version an MLflow alias is set to."""
    tracking_uri: str = ""
    dry_run: bool = False

    @property
    def key(self) -> str:
        """What makes this action done, once: experiment, decision, what and how."""
        what = f"{self.target}->{self.version}" if self.kind == "mlflow" else self.target
        mode = "dry-run" if self.dry_run else "live"
        return f"action:{self.experiment}:{self.decision.value.lower()}:{self.kind}:{what}:{mode}"


def parse_mlflow_target(target: str) -> tuple[str, str]:
    """``(model name, alias)`` of ``mlflow://models/NAME@ALIAS``.

    Examples
    --------
    >>> parse_mlflow_target("mlflow://models/churn@champion")
    ('churn', 'champion')
    """
    name, _, alias = target.removeprefix(MLFLOW_PREFIX).rpartition("@")
    if not target.startswith(MLFLOW_PREFIX) or not name or not alias:
        raise ActionConfigError(f"{target!r} is not mlflow://models/NAME@ALIAS")
    return name, alias


def _action(entry: Any, experiment: str, decision: Decision, candidate: str, where: str) -> Action:
    if not isinstance(entry, Mapping):
        raise ActionConfigError(f'{where}: expected a table like {{webhook = "https://..."}}')
    kinds = [k for k in ("mlflow", "webhook") if k in entry]
    if len(kinds) != 1 or not isinstance(entry[kinds[0]], str):
        raise ActionConfigError(f'{where}: give one of mlflow = "..." or webhook = "..."')
    kind = kinds[0]
    target = entry[kind]
    if kind == "webhook":
        if not target.startswith(("http://", "https://")):
            raise ActionConfigError(f"{where}.webhook: must be an http(s):// URL")
        return Action(experiment, decision, "webhook", target)
    try:
        parse_mlflow_target(target)
    except ActionConfigError as exc:
        raise ActionConfigError(f"{where}.mlflow: {exc}") from None
    uri = entry.get("tracking_uri")
    if not isinstance(uri, str) or not uri.startswith(("http://", "https://")):
        raise ActionConfigError(f"{where}.tracking_uri: the MLflow server's http(s):// URL")
    dry_run = entry.get("dry_run", True)
    if not isinstance(dry_run, bool):
        raise ActionConfigError(f"{where}.dry_run: true or false (got {dry_run!r})")
    version = str(entry.get("version", candidate))
    return Action(experiment, decision, "mlflow", target, version, uri.rstrip("/"), dry_run)


def actions_of(experiments: Iterable[Any]) -> list[Action]:
    """Every action of the experiments (``Experiment`` objects of the experiments file).

    Examples
    --------
    >>> from streams.join.experiments import ExperimentsFile
    >>> file = ExperimentsFile.parse('''
    ... [[experiments]]
    ... name = "e"
    ... model = "churn"
    ... live_version = "1"
    ... candidate = "2"
    ... on_promote = [{mlflow = "mlflow://models/churn@champion", tracking_uri = "http://m"}]
    ... ''')
    >>> [(a.kind, a.version, a.dry_run) for a in actions_of(file.experiments)]
    [('mlflow', '2', True)]
    """
    actions = []
    for experiment in experiments:
        table: Mapping[str, Any] = experiment.table or {}
        for trigger, decision in TRIGGERS.items():
            entries = table.get(trigger, [])
            where = f"experiment {experiment.name!r}.{trigger}"
            if not isinstance(entries, list):
                raise ActionConfigError(f"{where}: must be a list of tables")
            for i, entry in enumerate(entries):
                actions.append(
                    _action(entry, experiment.name, decision, experiment.candidate, f"{where}[{i}]")
                )
    return actions
