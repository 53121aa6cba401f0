"""The actions of the experiments file and the runner's once-per-decision rule, without a
broker or a server (tests/integration/test_actions.py has the real MLflow)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from streams.actions import Action, ActionConfigError, ActionRunner, actions_of, outcome_alert
from streams.cli import main
from streams.join.experiments import ExperimentsFile
from streams.records import Alert, Decision, Verdict
from streams.settings import Settings

HEAD = """
[[experiments]]
name = "churn-v2"
model = "churn"
live_version = "1"
candidate = "2"
"""


def parse(lines: str) -> list[Action]:
    return actions_of(ExperimentsFile.parse(HEAD + lines).experiments)


def test_mlflow_actions_default_to_a_dry_run_of_the_candidate_version() -> None:
    [action] = parse('on_promote = [{mlflow = "mlflow://models/churn@champion", '
                     'tracking_uri = "http://mlflow:5000/"}]')  # fmt: skip
    assert (action.decision, action.version, action.dry_run, action.tracking_uri) == (
        Decision.PROMOTE, "2", True, "http://mlflow:5000",
    )  # fmt: skip
    assert action.key == (
        "action:churn-v2:promote:mlflow:mlflow://models/churn@champion->2:dry-run"
    )


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('on_reject = [{webhook = "ftp://x"}]', r"an http\(s\):// URL"),
        ('on_reject = {webhook = "http://x"}', "must be a list"),
        ('on_promote = [{mlflow = "models:/churn@champion", tracking_uri = "http://m"}]',
         "not mlflow://models/NAME@ALIAS"),
        ('on_promote = [{mlflow = "mlflow://models/churn@champion"}]', "tracking_uri"),
        ('on_promote = [{mlflow = "mlflow://models/c@a", tracking_uri = "http://m", '
         'dry_run = "no"}]', "dry_run"),
        ('on_promote = [{slack = "http://x"}]', "give one of"),
    ],
)  # fmt: skip
def test_malformed_actions_name_the_entry(line: str, problem: str) -> None:
    with pytest.raises(ActionConfigError, match=problem) as caught:
        parse(line)
    assert "churn-v2" in str(caught.value)


def test_each_action_runs_once_per_experiment_and_decision() -> None:
    actions = parse('on_reject = [{webhook = "http://hooks/reject"}]\n'
                    'on_promote = [{webhook = "http://hooks/promote"}]')  # fmt: skip
    runner = ActionRunner(Settings(), actions)
    ran: list[str] = []
    runner.execute = lambda action, verdict: (ran.append(action.target) or True, "ok")  # type: ignore[method-assign]
    published: list[Alert] = []
    runner.observe(Verdict("churn-v2", Decision.CONTINUE, "", 0))
    runner.observe(Verdict("churn-v2", Decision.REJECT, "", 1))
    assert runner.act(published.append) == 1
    runner.observe(Verdict("churn-v2", Decision.REJECT, "again", 2))
    runner.observe(Verdict("other", Decision.REJECT, "", 3))
    assert runner.act(published.append) == 0
    assert ran == ["http://hooks/reject"] and [a.direction for a in published] == ["done"]
    # A second runner that reads the first one's outcome does not repeat it.
    again = ActionRunner(Settings(), actions)
    again.observe(published[0])
    again.observe(Verdict("churn-v2", Decision.REJECT, "", 4))
    assert again.act(published.append) == 0


def test_a_failed_action_is_published_and_tried_again_later() -> None:
    [action] = parse('on_reject = [{webhook = "http://hooks/reject"}]')
    runner = ActionRunner(Settings(), [action])
    results = iter([(False, "HTTP 500"), (True, "ok")])
    runner.execute = lambda action, verdict: next(results)  # type: ignore[method-assign]
    published: list[Alert] = []
    for attempt in range(2):
        runner.observe(Verdict("churn-v2", Decision.REJECT, "", attempt))
        runner.act(published.append)
    assert [(a.direction, a.severity) for a in published] == [
        ("failed", "warning"),
        ("done", "info"),
    ]
    assert outcome_alert(action, True, "m", 0).rule == "on_reject:webhook"


@pytest.mark.parametrize(
    ("extra", "message"),
    [("", "no on_promote or on_reject actions"),
     ('on_reject = [{webhook = "ftp://x"}]', "on_reject[0].webhook: must be an http(s)://")],
)  # fmt: skip
def test_the_actions_command_refuses_a_file_without_usable_actions(
    tmp_path: Path, extra: str, message: str
) -> None:
    path = tmp_path / "experiments.toml"
    path.write_text(HEAD + extra)
    result = CliRunner().invoke(main, ["actions", "--experiments", str(path)])
    assert result.exit_code == 1 and message in result.output, result.output
