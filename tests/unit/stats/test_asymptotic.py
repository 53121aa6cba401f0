"""The asymptotic confidence sequence: its moments against numpy/scipy, its interval against
Theorem 2.2 of Waudby-Smith et al. written out, its start gate, and the validity bench's
vectorised copy against it event by event."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from scipy import stats

from streams.stats import AsymptoticCS, ExperimentRules, MetricSpec
from streams.stats.sequential import mixture_rho
from tests.unit.stats._helpers import close


def bench() -> ModuleType:
    path = Path(__file__).resolve().parents[3] / "bench" / "validity.py"
    spec = importlib.util.spec_from_file_location("validity", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fed(t: AsymptoticCS, d: np.ndarray) -> AsymptoticCS:
    for v in d.tolist():
        t.update(0.0, v)
    return t


def test_moments_match_numpy_and_scipy_after_update_merge_and_revert() -> None:
    rng = np.random.default_rng(0)
    d = rng.lognormal(0.0, 1.0, 700) - 1.5
    t = fed(AsymptoticCS(), d[:400]).merge(fed(AsymptoticCS(), d[400:]))
    assert close(t.mean, float(np.mean(d)), 1e-12)
    assert close(t.sd, float(np.std(d, ddof=1)), 1e-12)
    assert close(t.skewness, float(stats.skew(d)), 1e-10)
    assert close(t.kurtosis, float(stats.kurtosis(d, fisher=False)), 1e-10)
    for v in d[500:].tolist():
        t.revert(0.0, v)
    assert t.n == 500 and close(t.skewness, float(stats.skew(d[:500])), 1e-9)
    assert close(t.kurtosis, float(stats.kurtosis(d[:500], fisher=False)), 1e-9)


def test_student_correction_is_students_t_read_as_normal() -> None:
    from streams.stats.asymptotic import student, student_dof, student_inverse

    assert student_dof(100, 3.0) == 100.0 and student_dof(100, 1.0) == math.inf
    for t, nu in [(2.5, 10.0), (-4.0, 66.0), (40.0, 5.0), (0.3, 1e6)]:
        z = student(t, nu)
        assert close(stats.norm.sf(z), stats.t.sf(t, nu), 1e-9) and abs(z) <= abs(t)
        assert close(student_inverse(z, nu), t, 1e-9)
    assert student(3.0, math.inf) == 3.0


def test_interval_is_theorem_2_2() -> None:
    rng = np.random.default_rng(1)
    d = rng.exponential(1.0, 3000) - 1.0
    t = fed(
        AsymptoticCS(
            alpha=0.05,
            min_samples=100,
            skew_factor=0.0,
            skew_correction=False,
            student_correction=False,
        ),
        d,
    )
    n, scale = len(d), float(np.var(d[:100]))  # variance when the test started (n = 100)
    rho = mixture_rho(scale, 0.05, 2000.0)
    rho_ws = 1.0 / math.sqrt(rho)  # the paper's rho: the mixing precision is 1 / rho**2
    s2 = float(np.var(d))  # the paper's sigma_hat**2 (ddof 0)
    a = n * s2 * rho_ws**2 + 1.0
    half = math.sqrt(2.0 * a / (n * n * rho_ws**2) * math.log(math.sqrt(a) / 0.05))
    lo, hi = t.get().ci
    assert close(lo, float(np.mean(d)) - half, 1e-9) and close(hi, float(np.mean(d)) + half, 1e-9)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_interval_is_where_the_evalue_stops_rejecting(alternative: str) -> None:
    # the skew-corrected interval inverts the skew-corrected e-value: at either bound the
    # two-sided e-value (at the interval's level) is exactly 1/level
    rng = np.random.default_rng(4)
    d = rng.lognormal(0.0, 1.0, 2000)
    t = fed(AsymptoticCS(alternative, alpha=0.05, min_samples=100), d)
    level = 0.05 if alternative == "two-sided" else 0.1
    for bound in t.get().ci:
        probe = fed(AsymptoticCS("two-sided", bound, level, 100), d)
        rho_fix = mixture_rho(t.scale, 0.05, 2000.0) / mixture_rho(t.scale, level, 2000.0)
        probe.scale = t.scale * rho_fix  # same mixing precision as the interval used
        assert close(probe.log_e(), math.log(1.0 / level), 1e-9)
    assert t.get().ci[0] < float(np.mean(d)) < t.get().ci[1]


def test_skewed_null_waits_for_cochrans_rule() -> None:
    # 1% +99 / 99% -1: skewness ~9.8, so the test waits for ~25 rare values (n ~ 2,500)
    d = np.full(3000, -1.0)
    d[::100] = 99.0  # 30 rare values, one every 100 requests
    t = AsymptoticCS("less", min_samples=100)
    silent_until = 0
    for i, v in enumerate(d.tolist()):
        t.update(0.0, v)
        if t.get().ci == (-math.inf, math.inf):
            silent_until = i + 1
    assert 2000 < silent_until < 3000
    assert t.get().pvalue == 1.0 or t.get().ci[0] < 0.0 < t.get().ci[1]


@pytest.mark.parametrize("kind", ["skewed", "symmetric", "pm99"])
def test_bench_vectorised_equals_streaming_event_by_event(kind: str) -> None:
    v = bench()
    rng = np.random.default_rng(7)
    if kind == "skewed":
        d = rng.lognormal(0.0, 1.0, (3, 1500)) - math.exp(0.5) + 0.05
    elif kind == "symmetric":
        d = rng.normal(0.05, 1.0, (3, 1500))
    else:
        d = np.where(rng.random((3, 1500)) < 0.02, 49.0, -1.0)
    le = v.log_e_asymptotic(d, 0.05, 50, 2000.0, 25.0)
    first = v.first_alert_asymptotic(d, True, 0.05, 50, 2000.0, 25.0)
    for r in range(d.shape[0]):
        t = AsymptoticCS("greater", alpha=0.05, min_samples=50)
        got = math.inf
        for i, x in enumerate(d[r].tolist()):
            t.update(0.0, x)
            assert close(t.log_e(), le[r, i], 1e-6, 1e-9), (r, i)
            if got == math.inf and t.get().pvalue <= 0.05:
                got = i + 1.0
        assert got == first[r]


def test_defaults_pick_the_mean_valid_test_unless_symmetric() -> None:
    assert MetricSpec("latency_ms", False).sequential_test == "asymptotic_cs"
    assert MetricSpec("correct", True, binary=True).sequential_test == "msprt"
    assert MetricSpec("revenue", True, symmetric=True).sequential_test == "msprt"
    cfg = ExperimentRules.from_dict(
        {
            "name": "e",
            "metrics": [{"name": "gain", "higher_is_better": True, "symmetric": True}],
            "rules": [{"name": "g", "metric": "gain"}, {"name": "l", "metric": "log_loss"}],
        }
    )
    assert [r.test for r in cfg.rules] == ["msprt", "asymptotic_cs", "msprt"]  # + invalid


def test_validity_bench_quick_mode_reports_the_battery(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert bench().main(["--json", "--runs", "20", "--events", "1500"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = out["aa_battery"]
    assert out["aa_nulls"] >= 8 and out["runs"] == 20 and out["events"] == 1500
    assert not rows["pareto1.5_latency/asymptotic_cs"]["in_hypothesis"]  # no variance
    inside = [r["false_alarm"] for r in rows.values() if r["in_hypothesis"]]
    assert out["aa_false_alarm_max"] == max(inside)
    assert {"detect_ratio", "detect_ratio_mae", "aa_false_alarm_max_se"} <= set(out)


def test_state_pickled_before_the_kurtosis_goes_on_without_student_correction() -> None:
    import pickle

    rng = np.random.default_rng(3)
    d = rng.lognormal(0.0, 1.0, 600) - math.exp(0.5)
    t = fed(AsymptoticCS("greater"), d[:300])
    old = pickle.loads(pickle.dumps(t))
    assert old.kurtosis == t.kurtosis
    object.__delattr__(old._m, "m4")  # as unpickled from a checkpoint without it
    state = old._m.__reduce_ex__(2)[2]
    old._m.__setstate__(state)
    fed(old, d[300:])
    ref = fed(AsymptoticCS("greater", student_correction=False), d)
    assert math.isnan(old.kurtosis) and close(old.log_e(), ref.log_e(), 1e-9)
