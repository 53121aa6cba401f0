"""Pure statistics core of shadow-eval: online tests, anytime-valid monitoring, rules, verdicts.

No Kafka, faust or fastavro import anywhere in this package (enforced by a test).

Stable interface for the join agent's stage 2::

    from streams.stats import ExperimentMonitor, ExperimentRules, Observation

    rules = ExperimentRules.from_dict(toml_table, where="experiments[0]")   # ConfigError on bad
    mon = ExperimentMonitor(rules)                                          # picklable
    mon.update(Observation(ts_ms, {"country": "FR"},
                           {"correct": (1.0, 0.0), "latency_ms": (12.0, 14.0)},
                           {"predicted_class": ("a", "b")}))
    ev = mon.evaluate(now_ms)        # ev.results, ev.alerts (FIRING/RESOLVED), ev.verdict

Online tests (river-style ``update(live, cand)`` / ``revert`` / ``get`` / ``merge`` / ``reset``,
``get()`` returns a frozen :class:`TestResult`): :class:`PairedT`, :class:`Wilcoxon`,
:class:`SignTest`, :class:`McNemar`, :class:`KS`, :class:`MannWhitney`, :class:`QuantileRatio`,
:class:`TwoProportions`, :class:`ChiSquare`, :class:`PSI`, :class:`Agreement`,
:class:`QuantileCS` (anytime-valid quantile ratio, any tails),
:class:`PredictionPowered` (mean difference before the labels, at planned looks),
:class:`MixtureSPRT` (anytime-valid for symmetric differences), :class:`AsymptoticCS`
(anytime-valid, asymptotically, for any mean with finite variance: the default for unbounded
metrics); :class:`Window` wraps any of them (count or time).  Non-finite values are refused with
:class:`NonFiniteError`.
:class:`BoundedCS` is the anytime-valid empirical-Bernstein confidence sequence the verdict uses
for guardrails on bounded (e.g. 0/1) metrics.
The experiments-file reference is the docstring of :mod:`streams.stats.rules`.
"""

from streams.stats.asymptotic import AsymptoticCS
from streams.stats.bounded import BoundedCS
from streams.stats.catalog import TESTS, make_test
from streams.stats.categorical import PSI, Agreement, ChiSquare
from streams.stats.config_reader import ConfigError
from streams.stats.metrics import BUILTIN_METRICS, MetricRegistry, MetricSpec
from streams.stats.monitor import ExperimentMonitor
from streams.stats.monitor_types import ALL as ALL_SEGMENT
from streams.stats.monitor_types import PROXY, Evaluation, Observation, RuleAlert
from streams.stats.multiple import benjamini_hochberg, bonferroni, e_bh
from streams.stats.noise import NoiseFloor, Tolerance, noise_floor
from streams.stats.paired import McNemar, PairedT, SignTest
from streams.stats.ppi import PredictionPowered
from streams.stats.quantile_cs import QuantileCS
from streams.stats.results import NonFiniteError, TestResult
from streams.stats.rules import ExperimentRules, Guardrail, Rule
from streams.stats.sequential import MixtureSPRT
from streams.stats.signed_rank import Wilcoxon
from streams.stats.twosample import KS, MannWhitney, QuantileRatio, TwoProportions
from streams.stats.verdict import GuardrailResult, VerdictResult
from streams.stats.windows import Statistic, Window

__all__ = [
    "ALL_SEGMENT",
    "BUILTIN_METRICS",
    "KS",
    "PROXY",
    "PSI",
    "TESTS",
    "Agreement",
    "AsymptoticCS",
    "BoundedCS",
    "ChiSquare",
    "ConfigError",
    "Evaluation",
    "ExperimentMonitor",
    "ExperimentRules",
    "Guardrail",
    "GuardrailResult",
    "MannWhitney",
    "McNemar",
    "MetricRegistry",
    "MetricSpec",
    "MixtureSPRT",
    "NoiseFloor",
    "NonFiniteError",
    "Observation",
    "PairedT",
    "PredictionPowered",
    "QuantileCS",
    "QuantileRatio",
    "Rule",
    "RuleAlert",
    "SignTest",
    "Statistic",
    "TestResult",
    "Tolerance",
    "TwoProportions",
    "VerdictResult",
    "Wilcoxon",
    "Window",
    "benjamini_hochberg",
    "bonferroni",
    "e_bh",
    "make_test",
    "noise_floor",
]
