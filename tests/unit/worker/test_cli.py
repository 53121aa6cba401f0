"""``shadow-eval worker`` argument errors, before any Kafka connection."""

from __future__ import annotations

from click.testing import CliRunner

from streams.cli import main


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["worker", *args])
    return result.exit_code, result.output


def test_unimportable_model_names_the_value() -> None:
    code, output = run("--model", "no_such_pkg.models:churn", "--version", "v2")
    assert code == 2
    assert "--model" in output and "no_such_pkg.models:churn" in output


def test_model_without_predict_is_rejected() -> None:
    code, output = run("--model", "math:pi", "--version", "v2")
    assert code == 2 and "'math:pi'" in output and "not callable" in output


def test_exactly_one_model_source() -> None:
    code, output = run("--version", "v2")
    assert code == 2 and "exactly one of --model" in output


def test_missing_model_file() -> None:
    code, output = run("--model-file", "/nonexistent/m.joblib", "--version", "v2")
    assert code == 2 and "/nonexistent/m.joblib" in output
