"""Catalogue of test names: which metric kinds they apply to and how to build them.

``min_effect`` is always expressed in the unit of the test's ``effect`` *centred so that 0 means
no difference* (see :func:`centred_effect`): mean difference for ``msprt``, ``asymptotic_cs`` and
``paired_t``, accuracy or rate difference for ``mcnemar``/``two_proportions``, rank-biserial
correlation for ``wilcoxon``, share of positive differences minus 0.5 for ``sign``,
P(cand > live) minus 0.5 for ``mannwhitney``, quantile ratio minus 1 for ``quantile_ratio`` and
``quantile_cs``, D
for ``ks``, Cramer's V for ``chi2``, PSI for ``psi`` and disagreement rate for ``agreement``.
"""

from __future__ import annotations

from collections.abc import Mapping

from streams.stats.asymptotic import AsymptoticCS
from streams.stats.categorical import PSI, Agreement, ChiSquare
from streams.stats.paired import McNemar, PairedT, SignTest
from streams.stats.quantile_cs import QuantileCS
from streams.stats.sequential import MixtureSPRT
from streams.stats.signed_rank import Wilcoxon
from streams.stats.twosample import KS, MannWhitney, QuantileRatio, TwoProportions
from streams.stats.windows import Statistic

__all__ = [
    "DIRECTIONAL_TESTS",
    "FIXED_HORIZON_TESTS",
    "SEQUENTIAL_TESTS",
    "TESTS",
    "TEST_KINDS",
    "battery",
    "centred_effect",
    "make_test",
]

#: test name -> metric kinds it applies to ("binary" = paired 0/1 metrics only)
TEST_KINDS: Mapping[str, tuple[str, ...]] = {
    "msprt": ("paired",),
    "asymptotic_cs": ("paired",),
    "paired_t": ("paired",),
    "wilcoxon": ("paired",),
    "sign": ("paired",),
    "mcnemar": ("binary",),
    "two_proportions": ("binary",),
    "mannwhitney": ("paired", "distribution"),
    "quantile_ratio": ("paired", "distribution"),
    "quantile_cs": ("paired", "distribution"),
    "ks": ("paired", "distribution"),
    "chi2": ("categorical",),
    "psi": ("categorical",),
    "agreement": ("categorical",),
}
TESTS = tuple(TEST_KINDS)
DIRECTIONAL_TESTS = frozenset(
    {
        "msprt",
        "asymptotic_cs",
        "paired_t",
        "wilcoxon",
        "sign",
        "mcnemar",
        "two_proportions",
        "mannwhitney",
        "quantile_ratio",
        "quantile_cs",
    }
)
SEQUENTIAL_TESTS = frozenset({"msprt", "asymptotic_cs", "quantile_cs"})
FIXED_HORIZON_TESTS = frozenset(TESTS) - SEQUENTIAL_TESTS


def make_test(
    test: str,
    alternative: str = "two-sided",
    *,
    null: float = 0.0,
    alpha: float = 0.05,
    min_samples: int = 100,
    quantile: float = 0.95,
    tune_n: float = 2000.0,
) -> Statistic:
    """Build a fresh statistic for ``test``; ``alternative`` is candidate vs live."""
    conf = 1.0 - alpha
    match test:
        case "msprt":
            return MixtureSPRT(alternative, null, alpha, min_samples, tune_n)
        case "asymptotic_cs":
            return AsymptoticCS(alternative, null, alpha, min_samples, tune_n)
        case "paired_t":
            return PairedT(alternative, conf)
        case "wilcoxon":
            return Wilcoxon(alternative, conf)
        case "sign":
            return SignTest(alternative, conf)
        case "mcnemar":
            return McNemar(alternative, conf)
        case "two_proportions":
            return TwoProportions(alternative, conf)
        case "mannwhitney":
            return MannWhitney(alternative, conf)
        case "quantile_ratio":
            return QuantileRatio(quantile, conf)
        case "quantile_cs":
            return QuantileCS(quantile, alternative, alpha, min_samples, tune_n)
        case "ks":
            return KS(conf)
        case "chi2":
            return ChiSquare(conf)
        case "psi":
            return PSI(conf)
        case "agreement":
            return Agreement(null, conf)
    raise ValueError(f"unknown test {test!r}; expected one of {TESTS}")


def centred_effect(test: str, effect: float) -> float:
    """Effect shifted so that 0 means "no difference" (see the module docstring)."""
    if test in ("sign", "mannwhitney"):
        return effect - 0.5
    if test in ("quantile_ratio", "quantile_cs"):
        return effect - 1.0
    if test == "agreement":
        return 1.0 - effect
    return effect


def battery(
    name: str, kind: str, binary: bool, sequential: str = "msprt"
) -> tuple[tuple[str, str, float], ...]:
    """Default reported tests for a metric: ``(key, test, quantile)`` triples; ``sequential``
    is the metric's anytime-valid test (:attr:`MetricSpec.sequential_test`)."""
    if kind == "categorical":
        return (("chi2", "chi2", 0.0), ("psi", "psi", 0.0), ("agreement", "agreement", 0.0))
    if kind == "distribution":
        return (("ks", "ks", 0.0), ("mannwhitney", "mannwhitney", 0.0))
    if binary:
        return (
            ("msprt", "msprt", 0.0),
            ("mcnemar", "mcnemar", 0.0),
            ("two_proportions", "two_proportions", 0.0),
        )
    out = [
        (sequential, sequential, 0.0),
        ("paired_t", "paired_t", 0.0),
        ("wilcoxon", "wilcoxon", 0.0),
        ("sign", "sign", 0.0),
    ]
    if name.startswith("latency"):
        out += [("mannwhitney", "mannwhitney", 0.0)]
    if name.startswith("latency") or name == "cpu_ms":
        out += [
            (f"quantile_ratio_p{round(q * 100)}", "quantile_ratio", q) for q in (0.5, 0.95, 0.99)
        ]
    return tuple(out)
