"""Parsing of experiment rules from TOML tables, defaults and configuration errors."""

from __future__ import annotations

import tomllib

import pytest

from streams.stats import ConfigError, ExperimentRules, MetricRegistry, MetricSpec, Rule

TOML = """
[[experiments]]
name = "churn-v2"
primary_metric = "log_loss"
guardrails = [
  {metric = "latency_ms", margin = 0.30, relative = true},
  {metric = "error", margin = 0.01},
]
alpha = 0.05
min_samples = 200
segments = ["country"]
[[experiments.metrics]]
name = "revenue"
higher_is_better = true
[[experiments.rules]]
name = "worse-accuracy"
metric = "correct"
test = "msprt"
direction = "worse"
alpha = 0.05
min_samples = 100
min_effect = 0.0
segments = ["country"]
severity = "critical"
fire_after = 2
resolve_after = 3
[[experiments.rules]]
name = "p95-latency"
metric = "latency_ms"
test = "quantile_ratio"
quantile = 0.95
min_effect = 0.2
window_seconds = 600
[[experiments.rules]]
name = "revenue"
metric = "revenue"
test = "paired_t"
segments = []
"""


def exp() -> dict:  # type: ignore[type-arg]
    return tomllib.loads(TOML)["experiments"][0]  # type: ignore[no-any-return]


def test_parses_full_example() -> None:
    cfg = ExperimentRules.from_dict(exp())
    assert cfg.name == "churn-v2" and cfg.primary_metric == "log_loss" and not cfg.default_rules
    assert [g.metric for g in cfg.guardrails] == ["latency_ms", "error"]
    assert cfg.guardrails[0].relative and cfg.guardrails[0].margin == 0.30
    acc, p95, rev, invalid = cfg.rules
    assert invalid.name == "invalid_predictions" and invalid.metric == "invalid"
    assert cfg.effective_alpha(invalid) == pytest.approx(0.05 / 4)  # its own, outside the split
    assert (acc.test, acc.fire_after, acc.resolve_after, acc.severity) == (
        "msprt",
        2,
        3,
        "critical",
    )
    assert acc.window is None and acc.segments == ("country",)
    # a rule without its own segments judges the overall traffic only
    assert p95.window_seconds == 600 and p95.window is None and p95.segments == ()
    assert p95.min_samples == 200 and p95.quantile == 0.95
    assert rev.segments == () and cfg.metrics["revenue"].higher_is_better
    assert cfg.segment_keys() == ("country",)
    # bonferroni over 3 rules and 1 + 21 segment slots for segmented rules
    assert cfg.effective_alpha(rev) == pytest.approx(0.05 / 3)
    assert cfg.effective_alpha(p95) == pytest.approx(0.05 / 3)
    assert cfg.effective_alpha(acc) == pytest.approx(0.05 / 3 / 22)


def test_default_rules_split_alpha() -> None:
    cfg = ExperimentRules.from_dict({"name": "e", "primary_metric": "correct", "alpha": 0.06})
    assert cfg.default_rules
    assert [(r.metric, r.test, r.direction) for r in cfg.rules] == [
        ("correct", "msprt", "worse"),
        ("latency_ms", "quantile_cs", "worse"),
        ("error", "msprt", "worse"),
        ("invalid", "msprt", "worse"),
    ]
    assert cfg.rules[1].quantile == 0.5  # latency: the median ratio
    assert all(cfg.effective_alpha(r) == pytest.approx(0.02) for r in cfg.rules[:3])
    assert cfg.effective_alpha(cfg.rules[3]) == pytest.approx(0.015)
    off = ExperimentRules.from_dict({"name": "e", "invalid_predictions": False})
    assert "invalid_predictions" not in [r.name for r in off.rules]
    assert cfg.rules[0].severity == "critical"
    spec = cfg.metrics["correct"]
    assert cfg.rules[0].alternative(spec) == "less"
    assert cfg.rules[1].alternative(cfg.metrics["latency_ms"]) == "greater"


@pytest.mark.parametrize(
    ("patch", "where", "field"),
    [
        ({"metric": "nope"}, "rules[0] ('worse-accuracy')", "metric"),
        ({"test": "ttest"}, "rules[0] ('worse-accuracy')", "test"),
        ({"alpha": 0.0}, "rules[0] ('worse-accuracy')", "alpha"),
        ({"alpha": 1.0}, "rules[0] ('worse-accuracy')", "alpha"),
        ({"alpha": "0.05"}, "rules[0] ('worse-accuracy')", "alpha"),
        ({"direction": "up"}, "rules[0] ('worse-accuracy')", "direction"),
        ({"severity": "fatal"}, "rules[0] ('worse-accuracy')", "severity"),
        ({"fire_after": 0}, "rules[0] ('worse-accuracy')", "fire_after"),
        ({"min_effect": -1}, "rules[0] ('worse-accuracy')", "min_effect"),
        ({"min_samples": 0}, "rules[0] ('worse-accuracy')", "min_samples"),
        ({"window": 10}, "rules[0] ('worse-accuracy')", "window"),
        ({"test": "chi2"}, "rules[0] ('worse-accuracy')", "test"),
        ({"segments": "country"}, "rules[0] ('worse-accuracy')", "segments"),
        ({"threshold": 3}, "rules[0] ('worse-accuracy')", "threshold"),
    ],
)
def test_bad_rule_fields_name_rule_and_field(patch: dict, where: str, field: str) -> None:  # type: ignore[type-arg]
    d = exp()
    d["rules"][0].update(patch)
    with pytest.raises(ConfigError) as err:
        ExperimentRules.from_dict(d, where="experiments[3]")
    assert f"experiments[3].{where}.{field}" in str(err.value)


def test_window_zero_is_an_error() -> None:
    d = exp()
    d["rules"][1].pop("window_seconds")
    d["rules"][1]["window"] = 0
    with pytest.raises(ConfigError, match=r"rules\[1\] \('p95-latency'\)\.window: must be"):
        ExperimentRules.from_dict(d)
    with pytest.raises(ConfigError, match=r"experiments\[0\]\.window"):
        ExperimentRules.from_dict({"name": "e", "window": 0})
    with pytest.raises(ConfigError, match="not both"):
        ExperimentRules.from_dict({"name": "e", "window": 5, "window_seconds": 3})


@pytest.mark.parametrize(
    ("d", "field"),
    [
        ({"name": "e", "alpha": 1.5}, "alpha"),
        ({"name": "e", "primary_metric": "gold"}, "primary_metric"),
        ({"name": ""}, "name"),
        ({"name": "e", "guardrails": [{"metric": "latency_ms", "margin": -1}]}, "margin"),
        ({"name": "e", "metrics": [{"name": "kpi"}]}, "higher_is_better"),
        (
            {
                "name": "e",
                "rules": [{"name": "a", "metric": "error"}, {"name": "a", "metric": "error"}],
            },
            "rules",
        ),
        ({"name": "e", "correction": "holm"}, "correction"),
    ],
)
def test_bad_experiment_fields(d: dict, field: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError, match=rf"\.{field}"):
        ExperimentRules.from_dict(d)
    assert issubclass(ConfigError, ValueError)


def test_custom_metric_registry() -> None:
    reg = MetricRegistry().declare(MetricSpec("clicks", higher_is_better=True))
    r = Rule.from_dict({"name": "c", "metric": "clicks"}, where="r", metrics=reg)
    assert r.alternative(reg["clicks"]) == "less"
    with pytest.raises(ConfigError, match="unknown metric"):
        Rule.from_dict({"name": "c", "metric": "clicks"}, where="r")
    with pytest.raises(KeyError, match="declare"):
        MetricRegistry()["clicks"]
    with pytest.raises(ValueError, match="kind"):
        MetricSpec("x", True, kind="weird")


def test_metric_bounds_parse_and_validate() -> None:
    d = exp()
    d["metrics"].append({"name": "latency_ms", "higher_is_better": False, "bounds": [0, 500]})
    cfg = ExperimentRules.from_dict(d)
    assert cfg.metrics["latency_ms"].bounds == (0.0, 500.0)
    assert cfg.metrics["latency_ms"].diff_bounds == (-500.0, 500.0)
    assert cfg.metrics["error"].diff_bounds == (-1.0, 1.0)
    assert cfg.metrics["log_loss"].diff_bounds is None
    for bad in ([1, 0], [0], "0,1", [0, float("inf")], [True, 2]):
        d["metrics"] = [{"name": "m", "higher_is_better": False, "bounds": bad}]
        with pytest.raises(ConfigError, match=r"metrics\[0\]\.bounds"):
            ExperimentRules.from_dict(d)
    with pytest.raises(ValueError, match="bounds"):
        MetricSpec("m", False, bounds=(1.0, 1.0))
