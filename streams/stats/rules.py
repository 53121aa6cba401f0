"""Alert rules and verdict settings of one experiment, parsed from its TOML table.

Experiments-file reference (``[[experiments]]`` table; keys not listed here belong to other
components and are ignored by this parser)::

    [[experiments]]
    name = "churn-v2"               # required, used in alert keys
    primary_metric = "log_loss"     # verdict primary metric (optional: without it the verdict
                                    #   stays "continue")
    primary_min_effect = 0.0        # superiority must exceed this (effect units, >= 0)
    guardrails = [                  # non-inferiority checks for "promote"
      {metric = "latency_ms", margin = 0.30, relative = true},  # +30% of live's mean at most
      {metric = "error", margin = 0.01},                        # +1 point at most (absolute)
    ]
    alpha = 0.05                    # in (0, 1); default level of rules and of the verdict
    min_samples = 100               # >= 1; burn-in before any alert or verdict
    segments = ["country"]          # segment keys tracked: per-segment results in every
                                    #   evaluation (rules judge segments only if they say so)
    max_segment_values = 20         # per key; further values share "<key>=__other__"
    window = 10000                  # count window for fixed-horizon tests (>= 1) ...
    # window_seconds = 3600         # ... or a time window (> 0); not both
    correction = "bonferroni"       # "bonferroni": split each rule's alpha over rules and
                                    #   segment values; "none": use alpha as given
    tune_n = 2000                   # sample size the sequential boundary is tuned for
    proxies = ["log_loss"]          # metrics with a label-free proxy "<metric>~proxy" in the
                                    #   observations: a prediction-powered estimate "ppi" of
                                    #   their mean difference before the labels (20 looks)
    estimated_verdict = true        # default: true when primary_metric is in proxies; the
                                    #   verdict may then decide on the primary's ppi estimate
                                    #   at its planned looks, labelled "estimated"
    ppi_look_every = 1000           # paired requests between the 20 planned looks (>= 1)
    invalid_predictions = true      # the rule "invalid_predictions" (see below)
    max_invalid_share = 0.01        # in [0, 1]: never promote a candidate whose share of
                                    #   invalid predictions exceeds live's by more than this

    [[experiments.metrics]]         # custom metrics (business KPIs)
    name = "revenue"
    higher_is_better = true
    kind = "paired"                 # paired | categorical | distribution
    binary = false
    # symmetric = true              # differences symmetric under "no difference": use the
                                    #   symmetric mixture SPRT by default (see README)
    # bounds = [0, 500]             # optional [lower, upper] of every value; makes a guardrail
                                    #   on it decidable when live and candidate always agree

    [[experiments.rules]]
    name = "worse-accuracy"         # required, unique within the experiment
    metric = "correct"              # built-in or declared metric
    test = "asymptotic_cs"          # default: the metric's anytime-valid test (asymptotic_cs,
                                    #   or msprt for 0/1 and symmetric metrics) | msprt |
                                    #   asymptotic_cs | paired_t | wilcoxon | sign | mcnemar |
                                    #   two_proportions | mannwhitney | quantile_ratio |
                                    #   quantile_cs (anytime-valid quantile ratio, recommended
                                    #   for latency: test = "quantile_cs", quantile = 0.99) |
                                    #   ks | chi2 | psi | agreement
    direction = "worse"             # worse | better | different (distribution tests: any)
    alpha = 0.05                    # default: experiment alpha
    min_samples = 100               # default: experiment min_samples
    min_effect = 0.0                # >= 0, in the test's effect units; smaller never alerts
    segments = ["country"]          # judged per value of these keys, and overall; default:
                                    #   none (overall traffic "all" only), whatever the
                                    #   experiment's segments
    severity = "critical"           # info | warning | critical
    fire_after = 2                  # consecutive evaluations meeting the condition to fire
    resolve_after = 3               # consecutive evaluations not meeting it to resolve
    quantile = 0.95                 # quantile_ratio and quantile_cs only
    # window / window_seconds override the experiment's (not allowed with sequential tests)

Without ``[[experiments.rules]]`` the default rules are anytime-valid rules (each metric's
sequential test: ``msprt`` for 0/1 metrics such as ``correct`` and ``error``, ``asymptotic_cs``
for unbounded ones such as losses; ``quantile_cs`` on the median for ``latency_ms``) in the
``worse`` direction on the primary
metric (``critical``), ``latency_ms`` and ``error``
(``warning``), overall segment, each at ``alpha / 3``, fire after 1, resolve after 3.
Whatever the rules, an ``invalid_predictions`` rule (``msprt`` on the 0/1 metric
``invalid``, ``worse``, ``warning``, fire after 1) alerts when the candidate's share of
invalid predictions (:mod:`streams.join.validity`) is significantly above live's; it runs
at ``alpha / 4`` of its own, outside the split of the other rules (it can only fire where
some prediction is invalid). ``invalid_predictions = false`` turns it off; a rule of that
name in ``[[experiments.rules]]`` replaces it.
A rule without ``segments`` judges the overall traffic only: the experiment's ``segments``
choose what is tracked and reported, not where every rule alerts (so ``worse-log-loss`` and
``worse-log-loss-by-country`` in one file alert overall and per country respectively, and a
rule's Bonferroni share is not split over segment values it does not judge).
Invalid values raise :class:`~streams.stats.config_reader.ConfigError` naming the rule and
the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.stats.catalog import FIXED_HORIZON_TESTS, SEQUENTIAL_TESTS, TEST_KINDS, TESTS
from streams.stats.config_reader import ConfigError, TableReader, metric_spec, tables
from streams.stats.metrics import MetricRegistry, MetricSpec

__all__ = [
    "DEFAULT_MAX_INVALID_SHARE",
    "DEFAULT_MIN_SAMPLES",
    "DEFAULT_TUNE_N",
    "DIRECTIONS",
    "INVALID_RULE",
    "SEVERITIES",
    "ExperimentRules",
    "Guardrail",
    "Rule",
]

DEFAULT_MIN_SAMPLES = 100
INVALID_RULE = "invalid_predictions"
DEFAULT_MAX_INVALID_SHARE = 0.01
DEFAULT_TUNE_N = 2000.0
DIRECTIONS = ("worse", "better", "different")
SEVERITIES = ("info", "warning", "critical")
_RULE_KEYS = frozenset(
    {
        "name",
        "metric",
        "test",
        "direction",
        "alpha",
        "min_samples",
        "min_effect",
        "segments",
        "severity",
        "fire_after",
        "resolve_after",
        "quantile",
        "window",
        "window_seconds",
    }
)


@dataclass(frozen=True, slots=True)
class Rule:
    """One alert rule (see the module docstring for the fields).

    Examples
    --------
    >>> r = Rule.from_dict({"name": "acc", "metric": "correct", "min_effect": 0.01},
    ...                    where="experiments[0].rules[0]")
    >>> r.test, r.direction, r.alpha
    ('msprt', 'worse', 0.05)
    >>> Rule.from_dict({"name": "x", "metric": "correct", "alpha": 2}, where="e.rules[1]")
    Traceback (most recent call last):
    ...
    streams.stats.config_reader.ConfigError: e.rules[1] ('x').alpha: must be in (0, 1) (got 2)
    """

    name: str
    metric: str
    test: str = "msprt"
    direction: str = "worse"
    alpha: float = 0.05
    min_samples: int = DEFAULT_MIN_SAMPLES
    min_effect: float = 0.0
    segments: tuple[str, ...] = ()
    severity: str = "warning"
    fire_after: int = 1
    resolve_after: int = 3
    quantile: float = 0.95
    window: int | None = None
    window_seconds: float | None = None

    @classmethod
    def from_dict(
        cls,
        d: Mapping[str, Any],
        where: str = "rule",
        *,
        metrics: MetricRegistry | None = None,
        defaults: Mapping[str, Any] | None = None,
    ) -> Rule:
        """Parse one ``[[experiments.rules]]`` table; ``defaults`` come from the experiment."""
        dflt = dict(defaults or {})
        name = d.get("name")
        loc = f"{where} ({name!r})" if isinstance(name, str) else where
        r = TableReader(d, loc)
        unknown = sorted(set(d) - _RULE_KEYS)
        if unknown:
            raise ConfigError(f"{loc}.{unknown[0]}: unknown field (known: {sorted(_RULE_KEYS)})")
        reg = metrics or MetricRegistry()
        metric = r.str_("metric")
        if metric not in reg:
            raise r.fail("metric", "unknown metric; declare it in [[experiments.metrics]]")
        spec = reg[metric]
        test = r.str_("test", spec.sequential_test, TESTS)
        kinds = ("binary", spec.kind) if spec.binary else (spec.kind,)
        if not set(kinds) & set(TEST_KINDS[test]):
            raise r.fail("test", f"does not apply to {spec.kind} metric {metric!r}")
        win = r.window((dflt.get("window"), dflt.get("window_seconds")))
        if test in SEQUENTIAL_TESTS and ("window" in d or "window_seconds" in d):
            raise r.fail("window", f"{test} is cumulative (anytime-valid); no window allowed")
        fire = r.int_("fire_after", 1, 1)
        return cls(
            name=r.str_("name"),
            metric=metric,
            test=test,
            direction=r.str_("direction", "worse", DIRECTIONS),
            alpha=r.num("alpha", dflt.get("alpha", 0.05), 0.0, 1.0, open_lo=True, open_hi=True),
            min_samples=r.int_("min_samples", dflt.get("min_samples", DEFAULT_MIN_SAMPLES), 1),
            min_effect=r.num("min_effect", 0.0, 0.0),
            segments=r.strs("segments", ()),
            severity=r.str_("severity", "warning", SEVERITIES),
            fire_after=fire,
            resolve_after=r.int_("resolve_after", 3, 1),
            quantile=r.num("quantile", 0.95, 0.0, 1.0, open_lo=True, open_hi=True),
            window=None if test in SEQUENTIAL_TESTS else win[0],
            window_seconds=None if test in SEQUENTIAL_TESTS else win[1],
        )

    def alternative(self, spec: MetricSpec) -> str:
        """scipy-style alternative (candidate vs live) this rule tests."""
        if self.direction == "different":
            return "two-sided"
        worse = spec.worse_alternative
        if self.direction == "worse":
            return worse
        return "greater" if worse == "less" else "less"

    @property
    def fixed_horizon(self) -> bool:
        """Whether the rule's test is a fixed-horizon (windowed) test."""
        return self.test in FIXED_HORIZON_TESTS


@dataclass(frozen=True, slots=True)
class Guardrail:
    """Non-inferiority requirement for promotion: the candidate may be worse by ``margin``.

    ``relative=True`` reads ``margin`` as a fraction of live's mean.
    """

    metric: str
    margin: float
    relative: bool = False

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str, metrics: MetricRegistry) -> Guardrail:
        """Parse one entry of ``guardrails``."""
        r = TableReader(d, where)
        metric = r.str_("metric")
        if metric not in metrics or metrics[metric].kind != "paired":
            raise r.fail("metric", "unknown or non-numeric metric")
        return cls(metric, r.num("margin", 0.0, 0.0), r.bool_("relative", False))


@dataclass(frozen=True, slots=True)
class ExperimentRules:
    """Rules and verdict settings of one experiment (see the module docstring).

    Examples
    --------
    >>> cfg = ExperimentRules.from_dict({"name": "churn-v2", "primary_metric": "log_loss"})
    >>> [r.name for r in cfg.rules], round(cfg.rules[0].alpha, 4)
    (['default-log_loss', 'default-latency_ms', 'default-error', 'invalid_predictions'], 0.0167)
    """

    name: str
    primary_metric: str | None = None
    primary_min_effect: float = 0.0
    guardrails: tuple[Guardrail, ...] = ()
    alpha: float = 0.05
    min_samples: int = DEFAULT_MIN_SAMPLES
    segments: tuple[str, ...] = ()
    max_segment_values: int = 20
    window: int | None = 10_000
    window_seconds: float | None = None
    correction: str = "bonferroni"
    tune_n: float = DEFAULT_TUNE_N
    custom_metrics: tuple[MetricSpec, ...] = ()
    rules: tuple[Rule, ...] = ()
    default_rules: bool = False
    proxies: tuple[str, ...] = ()
    estimated_verdict: bool = False
    ppi_look_every: int = 1000
    max_invalid_share: float = DEFAULT_MAX_INVALID_SHARE
    metrics: MetricRegistry = field(default_factory=MetricRegistry, compare=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "experiments[0]") -> ExperimentRules:
        """Parse one ``[[experiments]]`` table (as returned by ``tomllib``)."""
        r = TableReader(d, where)
        name = r.str_("name")
        custom = tuple(
            metric_spec(m, f"{where}.metrics[{i}]") for i, m in enumerate(tables(r, "metrics"))
        )
        reg = MetricRegistry(custom)
        primary = d.get("primary_metric")
        if primary is not None:
            primary = r.str_("primary_metric")
            if primary not in reg or reg[primary].kind != "paired":
                raise r.fail("primary_metric", "unknown or non-numeric metric")
        guards = tuple(
            Guardrail.from_dict(g, f"{where}.guardrails[{i}]", reg)
            for i, g in enumerate(tables(r, "guardrails"))
        )
        alpha = r.num("alpha", 0.05, 0.0, 1.0, open_lo=True, open_hi=True)
        min_samples = r.int_("min_samples", DEFAULT_MIN_SAMPLES, 1)
        segments = r.strs("segments", ())
        win = r.window((10_000, None))
        dflt = {
            "alpha": alpha,
            "min_samples": min_samples,
            "window": win[0],
            "window_seconds": win[1],
        }
        rules = tuple(
            Rule.from_dict(x, f"{where}.rules[{i}]", metrics=reg, defaults=dflt)
            for i, x in enumerate(tables(r, "rules"))
        )
        names = [x.name for x in rules]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise r.fail("rules", f"duplicate rule name {sorted(dup)[0]!r}")
        proxies = r.strs("proxies", ())
        for m in proxies:
            if m not in reg or reg[m].kind != "paired":
                raise r.fail("proxies", f"{m!r} is not a known numeric metric")
        estimated = r.bool_("estimated_verdict", primary is not None and primary in proxies)
        if estimated and (primary is None or primary not in proxies):
            raise r.fail("estimated_verdict", "needs primary_metric listed in proxies")
        defaults = not rules
        if defaults:
            rules = default_rules(primary, alpha, min_samples, reg)
        if r.bool_("invalid_predictions", True) and INVALID_RULE not in names:
            rules += (invalid_rule(alpha, min_samples),)
        return cls(
            name=name,
            primary_metric=primary,
            primary_min_effect=r.num("primary_min_effect", 0.0, 0.0),
            guardrails=guards,
            alpha=alpha,
            min_samples=min_samples,
            segments=segments,
            max_segment_values=r.int_("max_segment_values", 20, 1),
            window=win[0],
            window_seconds=win[1],
            correction=r.str_("correction", "bonferroni", ("bonferroni", "none")),
            tune_n=r.num("tune_n", DEFAULT_TUNE_N, 1.0),
            custom_metrics=custom,
            proxies=proxies,
            estimated_verdict=estimated,
            ppi_look_every=r.int_("ppi_look_every", 1000, 1),
            max_invalid_share=r.num("max_invalid_share", DEFAULT_MAX_INVALID_SHARE, 0.0, 1.0),
            rules=rules,
            default_rules=defaults,
            metrics=reg,
        )

    def segment_keys(self) -> tuple[str, ...]:
        """Every segment key tracked: the experiment's and the rules'."""
        keys = dict.fromkeys(self.segments)
        for rule in self.rules:
            keys.update(dict.fromkeys(rule.segments))
        return tuple(keys)

    def effective_alpha(self, rule: Rule) -> float:
        """The rule's alpha after the configured split over rules and segment values."""
        a = rule.alpha
        if self.correction == "none" or rule.name == INVALID_RULE:
            return a
        if not self.default_rules:
            a /= sum(r.name != INVALID_RULE for r in self.rules)
        return a / (1 + len(rule.segments) * (self.max_segment_values + 1))


def default_rules(
    primary: str | None, alpha: float, min_samples: int, metrics: MetricRegistry | None = None
) -> tuple[Rule, ...]:
    """Anytime-valid worse-direction rules on the primary metric, latency and error, each
    with its metric's sequential test (:attr:`MetricSpec.sequential_test`)."""
    reg = metrics or MetricRegistry()
    names = list(dict.fromkeys([m for m in (primary, "latency_ms", "error") if m]))
    a = alpha / len(names)
    return tuple(
        Rule(
            name=f"default-{m}",
            metric=m,
            # Latency is judged on a quantile, with no moment assumed: scheduling spikes make
            # it too skewed for a mean test to decide early. The median decides within a few
            # hundred requests; a p99 rule of one's own needs more (~1% of them are its data).
            test=_LATENCY_TEST if m == "latency_ms" else reg[m].sequential_test,
            direction="worse",
            alpha=a,
            min_samples=min_samples,
            severity="critical" if m == primary else "warning",
            quantile=_LATENCY_QUANTILE,
        )
        for m in names
    )


def invalid_rule(alpha: float, min_samples: int) -> Rule:
    """The ``invalid_predictions`` rule: the candidate's share of invalid predictions is
    significantly above live's (anytime-valid, at ``alpha / 4`` of its own)."""
    return Rule(
        name=INVALID_RULE,
        metric="invalid",
        test="msprt",
        direction="worse",
        alpha=alpha / 4,
        min_samples=min_samples,
        severity="warning",
    )


_LATENCY_TEST, _LATENCY_QUANTILE = "quantile_cs", 0.5
"""The default latency rule: the anytime-valid ratio of candidate to live median."""
