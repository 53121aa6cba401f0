"""Promotion verdicts: promote, reject or continue, each with the evidence behind it.

The verdict uses anytime-valid confidence sequences (cumulative, overall segment) at
``alpha / (1 + number of guardrails)`` each: each metric's sequential test (the symmetric
:class:`~streams.stats.sequential.MixtureSPRT` for 0/1 and declared-symmetric metrics, the
mean-valid :class:`~streams.stats.asymptotic.AsymptoticCS` otherwise):

* **reject** -- the primary metric is significantly worse (its confidence sequence lies on the
  worse side of 0), or a guardrail is significantly worse than its margin;
* **promote** -- the primary metric is significantly better (by more than
  ``primary_min_effect``) and every guardrail's worse-side bound is within its margin;
* **continue** -- otherwise, with the reason evidence is insufficient.

Whatever the evidence, a candidate whose share of invalid predictions (the metric
``invalid``: the validity gate of :mod:`streams.join.validity`) exceeds live's by more
than ``max_invalid_share`` is never promoted: the verdict is ``continue`` and its reason
says why (those predictions were left out of every other metric, so a candidate that
answers nonsense on the hard requests could otherwise look better).

With ``estimated_verdict`` (on when the primary metric has a label-free proxy), the primary's
prediction-powered estimate at its planned looks (see :mod:`streams.stats.ppi`) may reject or
promote where the labelled sequence decides nothing yet; the primary's alpha is then split in
half between the two, and the reason starts with ``estimated``.

Guardrails on *bounded* metrics (``binary`` ones, or declared ``bounds``) use the
empirical-Bernstein confidence sequence of :class:`~streams.stats.bounded.BoundedCS` instead:
valid at every sample size without symmetry or variance assumptions, and finite and shrinking
(like ``1/n``) when live and candidate agree on every request -- two models that never err pass
an ``error`` margin of 0.01 after about 1,200 requests at ``alpha = 0.025``.  A margin of exactly
0 can never be shown by any valid method (a tiny excess stays possible) and stays pending.

A guardrail on an *unbounded* metric whose differences are all exactly 0 stays ``pending``:
identical values say nothing about the mean of an unbounded difference (a rare, huge excess
stays possible at every sample size -- Bahadur & Savage 1956), so no valid finite confidence
sequence exists and the normal-mixture one is infinite.  Declaring ``bounds`` for the metric
(e.g. ``[0, timeout_ms]`` for latency) makes it decidable; the guardrail's explanation says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from streams.stats.asymptotic import AsymptoticCS
from streams.stats.bounded import BoundedCS
from streams.stats.metrics import MetricSpec
from streams.stats.results import TestResult
from streams.stats.rules import ExperimentRules, Guardrail
from streams.stats.sequential import MixtureSPRT

__all__ = ["DECISIONS", "ESTIMATED", "GuardStat", "GuardrailResult", "VerdictResult", "decide"]

DECISIONS = ("promote", "reject", "continue")


@dataclass(frozen=True, slots=True)
class GuardrailResult:
    """Non-inferiority status of one guardrail.

    ``worse_bound`` is the confidence-sequence bound of the candidate's excess on the worse
    side (``upper`` for lower-is-better metrics, sign-flipped for higher-is-better), ``limit``
    the margin in absolute units, ``status`` ``"ok"``, ``"violated"`` or ``"pending"``.
    """

    metric: str
    limit: float
    worse_bound: float
    best_bound: float
    status: str
    result: TestResult
    note: str = ""
    live_mean: float = math.nan
    """Live's mean, for a relative margin (NaN otherwise): the excess is shown in % of it."""

    def explain(self) -> str:
        """One line with the evidence."""
        text = (
            f"guardrail {self.metric} {self.status}: excess in [{self.best_bound:.4g}, "
            f"{self.worse_bound:.4g}] vs margin {self.limit:.4g}"
        )
        live = self.live_mean
        if math.isfinite(live) and live != 0.0:
            low, high, margin = (
                x / abs(live) for x in (self.best_bound, self.worse_bound, self.limit)
            )
            text += f" (candidate {low:+.0%} to {high:+.0%} of live, margin {margin:+.0%})"
        text += f" ({self.result.explain()})"
        return f"{text}; {self.note}" if self.note else text


@dataclass(frozen=True, slots=True)
class VerdictResult:
    """Decision about the candidate with its reason and evidence.

    Examples
    --------
    >>> v = VerdictResult("continue", "insufficient evidence: no observations yet", None, ())
    >>> v.decision
    'continue'
    """

    decision: str
    reason: str
    primary: TestResult | None
    guardrails: tuple[GuardrailResult, ...]


def _oriented(result: TestResult, spec: MetricSpec) -> tuple[float, float, float]:
    """(effect, low, high) with positive meaning "candidate better"."""
    lo, hi = result.ci
    if spec.higher_is_better:
        return result.effect, lo, hi
    return -result.effect, -hi, -lo


SeqStat = MixtureSPRT | AsymptoticCS
GuardStat = MixtureSPRT | AsymptoticCS | BoundedCS

_NO_VARIATION = (
    "no variation in the differences of an unbounded metric: no valid finite bound exists; "
    "declare its bounds ([[experiments.metrics]] bounds = [lower, upper]) to decide it"
)


def _guardrail(g: Guardrail, seq: GuardStat, spec: MetricSpec) -> GuardrailResult:
    res = seq.get()
    _eff, lo, hi = _oriented(res, spec)  # positive = better; excess (worse) = -value
    worse_bound, best_bound = -lo, -hi
    live = seq.live_mean
    limit = g.margin * abs(live) if g.relative and not math.isnan(live) else g.margin
    if seq.n < seq.min_samples or math.isinf(worse_bound):
        status = "pending"
    elif best_bound > limit:
        status = "violated"
    elif worse_bound <= limit:
        status = "ok"
    else:
        status = "pending"
    stuck = status == "pending" and seq.n >= seq.min_samples and math.isinf(worse_bound)
    flat = stuck and not isinstance(seq, BoundedCS) and seq.sd == 0.0
    note = _NO_VARIATION if flat else ""
    shown = live if g.relative else math.nan
    return GuardrailResult(g.metric, limit, worse_bound, best_bound, status, res, note, shown)


ESTIMATED = "estimated"  # first word of the reason of a verdict decided on a ppi estimate


def _estimated(
    cfg: ExperimentRules, est: TestResult | None, g_res: tuple[GuardrailResult, ...]
) -> VerdictResult | None:
    """Reject or promote on the primary's prediction-powered estimate at a planned look, or
    None when it decides nothing (absent, before its labelled minimum, or inconclusive)."""
    if est is None or cfg.primary_metric is None or not math.isfinite(est.ci[1] - est.ci[0]):
        return None
    _eff, lo, hi = _oriented(est, cfg.metrics[cfg.primary_metric])
    what = f"{ESTIMATED} (prediction-powered, labels partial, planned look)"
    ev = est.explain()
    if hi < 0:
        text = f"{what}: primary {cfg.primary_metric} significantly worse: {ev}"
        return VerdictResult("reject", text, est, g_res)
    if lo > cfg.primary_min_effect and all(g.status == "ok" for g in g_res):
        text = (
            f"{what}: primary {cfg.primary_metric} significantly better and "
            f"all guardrails within margin: {ev}"
        )
        return VerdictResult("promote", text, est, g_res)
    return None


def decide(
    cfg: ExperimentRules,
    primary: SeqStat | None,
    guards: Mapping[str, GuardStat],
    estimated: TestResult | None = None,
    invalid: Sequence[float] = (0, 0.0, 0.0),
) -> VerdictResult:
    """The verdict from the verdict statistics kept by the monitor.

    ``estimated`` is the primary metric's prediction-powered result at its latest planned
    look (when the experiment's ``estimated_verdict`` is on): it decides only where the
    labelled sequence does not, and the verdict's reason then starts with ``estimated`` and its
    ``primary`` is that result (``window="estimated"``). ``invalid`` is ``(pairs, live's
    invalid predictions, the candidate's)``: a promotion is held back (``continue``) while
    the candidate's invalid share exceeds live's by more than ``cfg.max_invalid_share``.
    """
    verdict = _decide(cfg, primary, guards, estimated)
    pairs, live_invalid, candidate_invalid = invalid
    if verdict.decision != "promote" or not pairs:
        return verdict
    excess = (candidate_invalid - live_invalid) / pairs
    if excess <= cfg.max_invalid_share:
        return verdict
    reason = (
        f"not promoted: {candidate_invalid / pairs:.2%} of the candidate's predictions are "
        f"invalid against live's {live_invalid / pairs:.2%}, more than max_invalid_share "
        f"{cfg.max_invalid_share:g} above (would promote: {verdict.reason})"
    )
    return VerdictResult("continue", reason, verdict.primary, verdict.guardrails)


def _decide(
    cfg: ExperimentRules,
    primary: SeqStat | None,
    guards: Mapping[str, GuardStat],
    estimated: TestResult | None,
) -> VerdictResult:
    if cfg.primary_metric is None:
        return VerdictResult("continue", "no primary_metric configured", None, ())
    spec = cfg.metrics[cfg.primary_metric]
    g_res = tuple(
        _guardrail(g, guards[g.metric], cfg.metrics[g.metric])
        if g.metric in guards and guards[g.metric].n
        else GuardrailResult(
            g.metric,
            g.margin,
            math.inf,
            -math.inf,
            "pending",
            TestResult(
                "msprt", math.nan, math.nan, math.nan, (-math.inf, math.inf), 0, "cumulative"
            ),
        )
        for g in cfg.guardrails
    )
    if primary is None or primary.n < cfg.min_samples:
        est = _estimated(cfg, estimated, g_res)
        if est is not None:
            return est
        n = 0 if primary is None else primary.n
        return VerdictResult(
            "continue",
            f"insufficient evidence: {cfg.primary_metric} n={n} < min_samples={cfg.min_samples}",
            None if primary is None else primary.get(),
            g_res,
        )
    res = primary.get()
    _eff, lo, hi = _oriented(res, spec)
    ev = res.explain()
    if hi < 0:
        return VerdictResult(
            "reject", f"primary {cfg.primary_metric} significantly worse: {ev}", res, g_res
        )
    bad = [g for g in g_res if g.status == "violated"]
    if bad:
        text = "; ".join(g.explain() for g in bad)
        if lo > cfg.primary_min_effect:  # say what is given up: a better but costlier model
            gain = f"{res.effect:+.4g} [{res.ci[0]:+.4g}, {res.ci[1]:+.4g}]"
            text = f"primary {cfg.primary_metric} significantly better ({gain}), but {text}"
        return VerdictResult("reject", text, res, g_res)
    if lo > cfg.primary_min_effect:
        pending = [g for g in g_res if g.status != "ok"]
        if not pending:
            return VerdictResult(
                "promote",
                f"primary {cfg.primary_metric} significantly better and "
                f"all guardrails within margin: {ev}",
                res,
                g_res,
            )
        return VerdictResult(
            "continue",
            "insufficient evidence: primary better but " + "; ".join(g.explain() for g in pending),
            res,
            g_res,
        )
    est = _estimated(cfg, estimated, g_res)
    if est is not None:
        return est
    return VerdictResult(
        "continue",
        f"insufficient evidence: primary {cfg.primary_metric} "
        f"improvement interval [{lo:.4g}, {hi:.4g}] not above "
        f"{cfg.primary_min_effect:g}: {ev}",
        res,
        g_res,
    )
