"""``shadow-eval alerts tail`` argument handling that needs no broker."""

from __future__ import annotations

from click.testing import CliRunner

from streams.alerts.subscribe import _Progress
from streams.cli import main


def test_alerts_is_a_registered_subcommand_with_tail() -> None:
    result = CliRunner().invoke(main, ["alerts", "tail", "--help"])

    assert result.exit_code == 0, result.output
    for option in ("--follow", "--json", "--experiment", "--from-beginning / --latest",
                   "--webhook", "--verdicts / --no-verdicts"):  # fmt: skip
        assert option in result.output


def test_a_non_http_webhook_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["alerts", "tail", "--webhook", "ftp://x/y"])

    assert result.exit_code == 2
    assert "--webhook" in result.output and "http(s)" in result.output


def test_a_bad_bootstrap_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["alerts", "tail", "--bootstrap", "nohost"])

    assert result.exit_code == 2 and "SHADOW_KAFKA_BOOTSTRAP" in result.output


def test_progress_is_finished_when_every_partition_reached_its_end() -> None:
    progress = _Progress(ends={0: 3, 1: 1, 2: 0}, done={2})

    progress.see(0, 1)
    assert not progress.finished
    progress.see(1, 0)
    progress.see(0, 2)
    assert progress.finished
