"""deploy/prometheus/rules.yml: valid for Prometheus (``promtool check rules``), each alert
firing on its failure and quiet otherwise (``promtool test rules``), and loaded by
deploy/prometheus.yml and docker-compose.yml. Debian's ``prometheus`` package brings
promtool; ``make test`` installs it (``make test-deps``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool missing: `make test-deps` installs Debian's prometheus"
)
ALERTS = {
    "ShadowWorkerLagGrowing",
    "ShadowWorkerStalled",
    "ShadowJoinLagGrowing",
    "ShadowWorkerDeadLetters",
    "ShadowJoinDeadLetters",
    "ShadowHookDrops",
    "ShadowJoinStalled",
    "ShadowJoinDown",
    "ShadowVerdictFlipping",
}


def _promtool(*args: str) -> str:
    assert PROMTOOL is not None
    done = subprocess.run(
        [PROMTOOL, *args], cwd=RULES.parent, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@needs_promtool
def test_promtool_accepts_the_rules() -> None:
    assert f"SUCCESS: {len(ALERTS)} rules found" in _promtool("check", "rules", RULES.name)


@needs_promtool
def test_every_alert_fires_on_its_failure_and_only_then() -> None:
    assert "SUCCESS" in _promtool("test", "rules", "rules.test.yml")


def test_every_alert_is_unit_tested_and_documented() -> None:
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    assert {r["alert"] for r in rules} == ALERTS
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    tests = yaml.safe_load((RULES.parent / "rules.test.yml").read_text())["tests"]
    tested = {t["alertname"] for test in tests for t in test["alert_rule_test"] if t["exp_alerts"]}
    assert tested == ALERTS


def test_prometheus_and_compose_load_the_rules() -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/rules.yml"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["prometheus"]["volumes"]
    assert "./deploy/prometheus/rules.yml:/etc/prometheus/rules.yml:ro" in mounts
