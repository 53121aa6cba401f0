"""How alerts and verdicts are shown: one human line, one JSON object, one Slack text.

Pure functions of a record; no Kafka, no I/O. The JSON field names are a stable interface
(scripts parse ``shadow-eval alerts tail --json``): add fields, never rename them.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from rich.text import Text

from streams.records import Alert, AlertState, Decision, MetricResult, Verdict

__all__ = [
    "AlertRecord",
    "format_line",
    "render_line",
    "result_summary",
    "slack_text",
    "to_dict",
]

AlertRecord = Alert | Verdict
"""What the alerts topic carries."""

_STATE_STYLE = {AlertState.FIRING: "bold red", AlertState.RESOLVED: "bold green"}
_SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}
_DECISION_STYLE = {
    Decision.PROMOTE: "bold green",
    Decision.REJECT: "bold red",
    Decision.CONTINUE: "blue",
}
_SLACK_EMOJI = {
    AlertState.FIRING: ":rotating_light:",
    AlertState.RESOLVED: ":white_check_mark:",
    Decision.PROMOTE: ":rocket:",
    Decision.REJECT: ":no_entry:",
    Decision.CONTINUE: ":hourglass_flowing_sand:",
}
_RESULT_FIELDS = (
    "metric",
    "test",
    "segment",
    "n",
    "statistic",
    "pvalue",
    "evalue",
    "effect",
    "ci_low",
    "ci_high",
    "live_value",
    "candidate_value",
)


def iso_time(timestamp_ms: int) -> str:
    """UTC ISO-8601 time of an epoch-milliseconds timestamp, to the millisecond."""
    moment = datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def _result_dict(result: MetricResult) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in _RESULT_FIELDS:
        value = getattr(result, name)
        out[name] = _finite(value) if isinstance(value, float) else value
    return out


def to_dict(record: AlertRecord) -> dict[str, Any]:
    """A JSON-ready dict with stable field names and a ``kind`` ("alert" or "verdict").

    Non-finite numbers become ``None`` so the output is strict JSON.

    Examples
    --------
    >>> from streams.records import Alert, AlertState, MetricResult
    >>> alert = Alert("churn:lat:", AlertState.FIRING, "churn", "lat", "warning", "worse",
    ...               MetricResult("latency_ms", "msprt", 500, effect=12.5), "slower", 0)
    >>> d = to_dict(alert)
    >>> d["kind"], d["state"], d["time"], d["result"]["effect"]
    ('alert', 'FIRING', '1970-01-01T00:00:00.000Z', 12.5)
    """
    if isinstance(record, Alert):
        return {
            "kind": "alert",
            "time": iso_time(record.timestamp_ms),
            "timestamp_ms": record.timestamp_ms,
            "dedup_key": record.dedup_key,
            "state": record.state.value,
            "experiment": record.experiment,
            "rule": record.rule,
            "severity": record.severity,
            "direction": record.direction,
            "result": _result_dict(record.result),
            "message": record.message,
        }
    return {
        "kind": "verdict",
        "time": iso_time(record.timestamp_ms),
        "timestamp_ms": record.timestamp_ms,
        "experiment": record.experiment,
        "decision": record.decision.value,
        "reason": record.reason,
        "primary": None if record.primary is None else _result_dict(record.primary),
        "guardrails": [_result_dict(g) for g in record.guardrails],
    }


def _num(value: float | None) -> str:
    value = _finite(value)
    return "-" if value is None else f"{value:.4g}"


def _signed(value: float | None) -> str:
    value = _finite(value)
    return "-" if value is None else f"{value:+.4g}"


def result_summary(result: MetricResult) -> str:
    """``metric segment effect [ci] p/e n`` of one result, compactly.

    Examples
    --------
    >>> r = MetricResult("log_loss", "msprt", 1200, "country=DE", effect=0.031,
    ...                  ci_low=0.012, ci_high=0.05, evalue=41.7)
    >>> result_summary(r)
    'log_loss [country=DE] effect=+0.031 [0.012, 0.05] e=41.7 n=1200'
    """
    parts = [result.metric, f"[{result.segment or 'all'}]", f"effect={_signed(result.effect)}"]
    if _finite(result.ci_low) is not None or _finite(result.ci_high) is not None:
        parts.append(f"[{_num(result.ci_low)}, {_num(result.ci_high)}]")
    if _finite(result.pvalue) is not None:
        parts.append(f"p={_num(result.pvalue)}")
    if _finite(result.evalue) is not None:
        parts.append(f"e={_num(result.evalue)}")
    parts.append(f"n={result.n}")
    return " ".join(parts)


def render_line(record: AlertRecord) -> Text:
    """One styled line (rich drops the styles when the output is not a terminal).

    Examples
    --------
    >>> from streams.records import Decision, Verdict
    >>> render_line(Verdict("churn", Decision.CONTINUE, "too few samples", 0)).plain
    '1970-01-01T00:00:00.000Z VERDICT  CONTINUE churn  too few samples'
    """
    line = Text(iso_time(record.timestamp_ms) + " ", style="dim")
    if isinstance(record, Alert):
        line.append(f"{record.state.value:<8}", style=_STATE_STYLE[record.state])
        line.append(" ")
        line.append(f"{record.severity:<8}", style=_SEVERITY_STYLE.get(record.severity, ""))
        line.append(f" {record.experiment} ", style="bold")
        line.append(f"{record.rule} ", style="magenta")
        line.append(result_summary(record.result))
        line.append(f"  {record.message}", style="dim")
        return line
    line.append("VERDICT  ", style="bold")
    line.append(f"{record.decision.value:<8}", style=_DECISION_STYLE[record.decision])
    line.append(f" {record.experiment}", style="bold")
    if record.primary is not None:
        line.append(" " + result_summary(record.primary))
    line.append(f"  {record.reason}", style="dim")
    return line


def format_line(record: AlertRecord) -> str:
    """The human line without styles (logs, files, pipes)."""
    return render_line(record).plain


def slack_text(record: AlertRecord) -> str:
    """A one-line Slack ``text``: emoji, state, severity, experiment, rule and the numbers.

    Examples
    --------
    >>> from streams.records import Alert, AlertState, MetricResult
    >>> alert = Alert("churn:err:", AlertState.RESOLVED, "churn", "err", "warning", "worse",
    ...               MetricResult("error", "msprt", 900, effect=0.0), "ok", 0)
    >>> slack_text(alert)
    ':white_check_mark: *RESOLVED* [warning] churn / err: error [all] effect=+0 n=900 - ok'
    """
    if isinstance(record, Alert):
        head = (
            f"{_SLACK_EMOJI[record.state]} *{record.state.value}* [{record.severity}] "
            f"{record.experiment} / {record.rule}"
        )
        return f"{head}: {result_summary(record.result)} - {record.message}"
    head = f"{_SLACK_EMOJI[record.decision]} *VERDICT {record.decision.value}* {record.experiment}"
    if record.primary is not None:
        head += f": {result_summary(record.primary)}"
    return f"{head} - {record.reason}"
