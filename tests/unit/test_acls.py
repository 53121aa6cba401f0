"""The least ACLs of each role, and their kafka-acls commands."""

from __future__ import annotations

import pytest

from streams.acls import ROLES, kafka_acls_commands, role_acls
from streams.settings import Settings

SETTINGS = Settings(topic_prefix="p")


def _granted(role: str) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for acl in role_acls(SETTINGS, role):
        out.setdefault((acl.resource, acl.name), set()).update(acl.operations)
    return out


def test_the_hook_only_writes_its_three_topics() -> None:
    granted = _granted("hook")
    topics = {name for kind, name in granted if kind == "topic"}
    assert topics == {"p.inputs", "p.predictions.live", "p.ground_truth"}
    assert all("Read" not in ops for ops in granted.values())


def test_the_join_writes_transactions_under_its_group_prefix() -> None:
    granted = _granted("join")
    assert granted[("transactional-id", "shadow-eval-join-p")] == {"Write", "Describe"}
    assert granted[("group", "shadow-eval-join-p")] == {"Read", "Describe"}
    assert {"Read", "Write"} <= granted[("topic", "p.join.state")]


def test_workers_and_alerts_read_only_what_they_consume() -> None:
    assert _granted("worker")[("topic", "p.inputs")] == {"Read", "Describe"}
    assert _granted("worker")[("topic", "p.predictions.shadow")] == {"Write", "Describe"}
    assert set(_granted("alerts")) == {("topic", "p.alerts"), ("group", "shadow-eval-alerts-")}


@pytest.mark.parametrize("role", ROLES)
def test_every_role_prints_one_command_per_binding(role: str) -> None:
    acls = role_acls(SETTINGS, role)
    commands = kafka_acls_commands(acls, "User:x", bootstrap="k:9093")
    assert len(commands) == len(acls)
    assert all(c.startswith("kafka-acls.sh --bootstrap-server k:9093") for c in commands)
    prefixed = [c for c, a in zip(commands, acls, strict=True) if a.prefixed]
    assert all(c.endswith("--resource-pattern-type prefixed") for c in prefixed)


def test_an_unknown_role_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown role"):
        role_acls(SETTINGS, "admin")
