"""Verdicts with guardrails whose differences have no variance, and rule-segment semantics."""

from __future__ import annotations

import random
from typing import Any

from streams.stats import ExperimentMonitor, Observation, VerdictResult

GUARD_ERROR = {"metric": "error", "margin": 0.01}


def verdict_after(cfg: dict[str, Any], n: int, p_err_live: float, p_err_cand: float,
                  latency_equal: bool = False, seed: int = 0) -> VerdictResult:  # fmt: skip
    """Candidate 10 points more accurate than live; error and latency as asked."""
    rng = random.Random(seed)
    mon = ExperimentMonitor(cfg)
    for i in range(n):
        lat = rng.lognormvariate(3.0, 0.3)
        paired = {
            "correct": (float(rng.random() < 0.8), float(rng.random() < 0.9)),
            "error": (float(rng.random() < p_err_live), float(rng.random() < p_err_cand)),
            "latency_ms": (lat, lat if latency_equal else rng.lognormvariate(3.0, 0.3)),
        }
        mon.update(Observation(i, {}, paired))
    return mon.evaluate(n).verdict


def test_never_erring_models_pass_the_error_guardrail() -> None:
    """(a) Both never err: the error guardrail is within 0.01 and the better candidate wins."""
    cfg = {"name": "e", "primary_metric": "correct", "guardrails": [GUARD_ERROR]}
    early = verdict_after(cfg, 500, 0.0, 0.0)
    assert early.decision == "continue" and early.guardrails[0].status == "pending"
    assert early.guardrails[0].worse_bound < 0.03  # finite and shrinking, not [-inf, inf]
    v = verdict_after(cfg, 2000, 0.0, 0.0)
    assert v.decision == "promote", v.reason
    g = v.guardrails[0]
    assert g.status == "ok" and 0.0 < g.worse_bound < 0.01 and g.result.test == "bounded_cs"


def test_margin_zero_is_never_shown() -> None:
    """No valid method shows an excess of exactly <= 0 from finite data: stays pending."""
    cfg = {"name": "e", "primary_metric": "correct", "guardrails": [{"metric": "error"}]}
    v = verdict_after(cfg, 3000, 0.0, 0.0)
    assert v.decision == "continue" and v.guardrails[0].status == "pending"


def test_candidate_erring_five_points_more_is_rejected() -> None:
    """(b) +5 points of errors against a margin of 0.01: guardrail violated, verdict reject."""
    cfg = {"name": "e", "primary_metric": "correct", "guardrails": [GUARD_ERROR]}
    v = verdict_after(cfg, 3000, 0.01, 0.06, seed=1)
    assert v.guardrails[0].status == "violated" and v.guardrails[0].best_bound > 0.01
    assert v.decision == "reject" and "guardrail error violated" in v.reason


def test_identical_unbounded_metric_stays_pending_and_says_why() -> None:
    """(c) Identical latency: no valid finite bound exists for an unbounded difference."""
    guard = {"metric": "latency_ms", "margin": 0.3, "relative": True}
    cfg = {"name": "e", "primary_metric": "correct", "guardrails": [guard]}
    v = verdict_after(cfg, 3000, 0.0, 0.0, latency_equal=True)
    assert v.decision == "continue" and v.guardrails[0].status == "pending"
    assert "declare its bounds" in v.reason


def test_identical_metric_with_declared_bounds_passes() -> None:
    """(c) Declared bounds make the same guardrail decidable (finite, shrinking CS)."""
    guard = {"metric": "latency_ms", "margin": 0.3, "relative": True}
    bounded = {"name": "latency_ms", "higher_is_better": False, "bounds": [0, 1000]}
    cfg = {"name": "e", "primary_metric": "correct", "guardrails": [guard], "metrics": [bounded]}
    v = verdict_after(cfg, 3000, 0.0, 0.0, latency_equal=True)
    assert v.decision == "promote", v.reason
    assert v.guardrails[0].status == "ok" and v.guardrails[0].worse_bound < v.guardrails[0].limit


def test_rule_without_segments_judges_overall_only() -> None:
    """Experiment segments are tracked; only a rule that names them alerts per segment."""
    cfg = {
        "name": "s",
        "segments": ["country"],
        "rules": [
            {"name": "worse-log-loss", "metric": "log_loss", "min_samples": 50},
            {
                "name": "by-country",
                "metric": "log_loss",
                "segments": ["country"],
                "min_samples": 50,
            },
        ],
    }
    mon = ExperimentMonitor(cfg)
    rng = random.Random(2)
    for i in range(600):
        live = rng.expovariate(2.0)
        obs = Observation(i, {"country": "FR" if i % 2 else "DE"}, {"log_loss": (live, live + 0.5)})
        mon.update(obs)
    ev = mon.evaluate(600)
    assert set(ev.rule_results["worse-log-loss"]) == {"all"}
    assert set(ev.rule_results["by-country"]) == {"all", "country=FR", "country=DE"}
    assert {a.key for a in ev.alerts} == {
        "s:worse-log-loss:all",
        "s:by-country:all",
        "s:by-country:country=FR",
        "s:by-country:country=DE",
    }
    assert "country=FR" in ev.results["log_loss"]  # still tracked and reported per segment
