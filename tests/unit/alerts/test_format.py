"""Human lines, JSON objects and Slack text of alerts and verdicts."""

from __future__ import annotations

import json
import math
from dataclasses import replace

from rich.console import Console

from streams.alerts import format_line, render_line, result_summary, slack_text, to_dict
from streams.records import Alert, AlertState, Decision, MetricResult, Verdict

RESULT = MetricResult(
    "latency_ms", "msprt", 1234, "country=DE", statistic=3.2, pvalue=0.0012, evalue=87.5,
    effect=12.25, ci_low=8.1, ci_high=16.5, live_value=40.0, candidate_value=52.25,
)  # fmt: skip
ALERT = Alert(
    "churn:v2:slow:country=DE", AlertState.FIRING, "churn:v2", "slow", "critical", "worse",
    RESULT, "p95 latency up 30%", 1_700_000_000_123,
)  # fmt: skip
VERDICT = Verdict(
    "churn:v2", Decision.REJECT, "guardrail latency_ms failed", 1_700_000_000_000,
    primary=MetricResult("log_loss", "msprt", 900, effect=-0.01, pvalue=0.2),
    guardrails=(RESULT,),
)  # fmt: skip

ALERT_FIELDS = [
    "kind", "time", "timestamp_ms", "dedup_key", "state", "experiment", "rule", "severity",
    "direction", "result", "message",
]  # fmt: skip
RESULT_FIELDS = [
    "metric", "test", "segment", "n", "statistic", "pvalue", "evalue", "effect", "ci_low",
    "ci_high", "live_value", "candidate_value",
]  # fmt: skip


def test_alert_json_has_stable_fields_and_values() -> None:
    d = to_dict(ALERT)

    assert list(d) == ALERT_FIELDS
    assert list(d["result"]) == RESULT_FIELDS
    assert d["kind"] == "alert"
    assert d["time"] == "2023-11-14T22:13:20.123Z"
    assert d["state"] == "FIRING"
    assert d["result"]["effect"] == 12.25 and d["result"]["n"] == 1234
    assert json.loads(json.dumps(d, allow_nan=False)) == d


def test_verdict_json_has_stable_fields() -> None:
    d = to_dict(VERDICT)

    assert list(d) == [
        "kind", "time", "timestamp_ms", "experiment", "decision", "reason", "primary",
        "guardrails",
    ]  # fmt: skip
    assert d["kind"] == "verdict" and d["decision"] == "REJECT"
    assert d["primary"]["metric"] == "log_loss"
    assert [g["metric"] for g in d["guardrails"]] == ["latency_ms"]
    assert to_dict(Verdict("x", Decision.CONTINUE, "wait", 0))["primary"] is None


def test_non_finite_numbers_become_null_in_json() -> None:
    odd = MetricResult("m", "t", 3, effect=math.nan, ci_low=-math.inf, pvalue=math.inf)
    alert = Alert("k", AlertState.FIRING, "e", "r", "info", "worse", odd, "", 0)

    d = to_dict(alert)

    assert d["result"]["effect"] is None and d["result"]["ci_low"] is None
    assert d["result"]["pvalue"] is None
    json.dumps(d, allow_nan=False)  # strict JSON: raises on NaN


def test_human_line_shows_every_part() -> None:
    line = format_line(ALERT)

    assert line.startswith("2023-11-14T22:13:20.123Z FIRING   critical churn:v2 slow ")
    for part in (
        "latency_ms", "[country=DE]", "effect=+12.25", "[8.1, 16.5]", "p=0.0012", "e=87.5",
        "n=1234", "p95 latency up 30%",
    ):  # fmt: skip
        assert part in line
    assert "\n" not in line


def test_result_summary_leaves_out_missing_numbers() -> None:
    bare = MetricResult("error", "msprt", 10)

    assert result_summary(bare) == "error [all] effect=- n=10"


def test_verdict_line() -> None:
    line = format_line(VERDICT)

    assert "VERDICT" in line and "REJECT" in line and "churn:v2" in line
    assert "log_loss" in line and "guardrail latency_ms failed" in line


def test_colours_on_a_terminal_only() -> None:
    tty = Console(force_terminal=True, color_system="standard", width=300, soft_wrap=True)
    with tty.capture() as captured:
        tty.print(render_line(ALERT))
    plain = Console(force_terminal=False, width=300, soft_wrap=True)
    with plain.capture() as uncoloured:
        plain.print(render_line(ALERT))

    assert "\x1b[" in captured.get()
    assert "\x1b[" not in uncoloured.get()
    assert uncoloured.get().rstrip("\n") == format_line(ALERT)


def test_firing_and_resolved_are_styled_differently() -> None:
    resolved = replace(ALERT, state=AlertState.RESOLVED)

    def state_style(alert: Alert) -> str:
        text = render_line(alert)
        start = text.plain.index(alert.state.value)
        return next(str(s.style) for s in text.spans if s.start == start)

    assert state_style(ALERT) != state_style(resolved)


def test_slack_text_is_one_line_with_the_essentials() -> None:
    text = slack_text(ALERT)

    assert text.startswith(":rotating_light: *FIRING* [critical] churn:v2 / slow: latency_ms")
    assert text.endswith("- p95 latency up 30%")
    assert "effect=+12.25 [8.1, 16.5]" in text
    assert "\n" not in text


def test_slack_text_of_a_resolution_and_a_verdict() -> None:
    resolved = replace(ALERT, state=AlertState.RESOLVED, message="back to normal")

    assert slack_text(resolved).startswith(":white_check_mark: *RESOLVED*")
    assert slack_text(VERDICT).startswith(":no_entry: *VERDICT REJECT* churn:v2: log_loss")
    assert slack_text(VERDICT).endswith("- guardrail latency_ms failed")
