"""The least ACLs each shadow-eval component needs, and the ``kafka-acls`` commands for them.

A pure description (no Kafka client): ``shadow-eval acls print`` formats it as
``kafka-acls`` commands, the README's table lists it, and the secured integration tests
grant exactly these bindings through an admin client. Names follow ``Settings`` (the
topic prefix) and the defaults of the components: shadow workers' groups start with
``shadow-worker.``, the join's groups and transactional ids with ``<app_id>-<prefix>``,
readers' (``alerts tail``) groups with ``shadow-eval-<purpose>-``.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Literal

from streams.settings import Settings

__all__ = ["ROLES", "Acl", "kafka_acls_commands", "role_acls"]

Role = Literal["hook", "worker", "join", "alerts"]
ROLES: tuple[Role, ...] = ("hook", "worker", "join", "alerts")
ResourceType = Literal["topic", "group", "transactional-id", "cluster"]

READ = ("Read", "Describe")
WRITE = ("Write", "Describe")


@dataclass(frozen=True, slots=True)
class Acl:
    """Allow ``operations`` on one resource (``prefixed``: every name starting with it).

    Examples
    --------
    >>> Acl("topic", "shadow.inputs", ("Read", "Describe")).option()
    ['--topic', 'shadow.inputs']
    """

    resource: ResourceType
    name: str
    operations: tuple[str, ...]
    prefixed: bool = False

    def option(self) -> list[str]:
        """The ``kafka-acls`` resource options of this binding."""
        if self.resource == "cluster":
            return ["--cluster"]
        out = [f"--{self.resource}", self.name]
        if self.prefixed:
            out += ["--resource-pattern-type", "prefixed"]
        return out


def role_acls(settings: Settings, role: str, *, join_app_id: str = "shadow-eval-join") -> list[Acl]:
    """The ACLs ``role`` needs with these settings' topic names.

    Every producer is idempotent (``IdempotentWrite`` on the cluster, which brokers
    before 3.0 require); join stage 1 commits transactions under its group's name.

    Examples
    --------
    >>> [a.name for a in role_acls(Settings(), "alerts")]
    ['shadow.alerts', 'shadow-eval-alerts-']
    """
    t = settings.topics
    if role == "hook":
        return [
            *(Acl("topic", name, WRITE) for name in (t.inputs, t.live_predictions, t.ground_truth)),
            Acl("cluster", "kafka-cluster", ("IdempotentWrite",)),
        ]
    if role == "worker":
        return [
            Acl("topic", t.inputs, READ),
            Acl("topic", t.shadow_predictions, WRITE),
            Acl("topic", t.dlq, WRITE),
            Acl("group", "shadow-worker.", READ, prefixed=True),
            Acl("cluster", "kafka-cluster", ("IdempotentWrite",)),
        ]
    if role == "join":
        group = f"{join_app_id}-{settings.topic_prefix}"
        return [
            *(Acl("topic", name, READ) for name in t.per_request),
            Acl("topic", t.join_events, ("Read", "Write", "Describe")),
            Acl("topic", t.join_state, ("Read", "Write", "Describe")),
            *(Acl("topic", name, WRITE) for name in (t.metrics, t.alerts, t.dlq)),
            Acl("group", group, READ, prefixed=True),
            Acl("transactional-id", group, WRITE, prefixed=True),
            Acl("cluster", "kafka-cluster", ("IdempotentWrite",)),
        ]
    if role == "alerts":
        return [
            Acl("topic", t.alerts, READ),
            Acl("group", "shadow-eval-alerts-", READ, prefixed=True),
        ]
    raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")


def kafka_acls_commands(
    acls: list[Acl],
    principal: str,
    *,
    bootstrap: str = "BOOTSTRAP",
    command_config: str = "admin.properties",
) -> list[str]:
    """One ``kafka-acls.sh --add`` command per binding.

    Examples
    --------
    >>> kafka_acls_commands([Acl("topic", "t", ("Read",))], "User:x", bootstrap="k:9092")[0]
    'kafka-acls.sh --bootstrap-server k:9092 --command-config admin.properties --add \
--allow-principal User:x --operation Read --topic t'
    """
    commands = []
    for acl in acls:
        words = [
            "kafka-acls.sh", "--bootstrap-server", bootstrap, "--command-config", command_config,
            "--add", "--allow-principal", principal,
        ]  # fmt: skip
        for operation in acl.operations:
            words += ["--operation", operation]
        words += acl.option()
        commands.append(shlex.join(words))
    return commands
