"""The whole path on the secured broker: SASL_SSL and mutual TLS, least-privilege ACLs, no leaks.

For each listener, every component runs as its own principal with exactly the ACLs of
``streams.acls.role_acls`` (the admin only creates topics, grants ACLs and reads the
outputs back): the hook serves the same seeded workload as the plaintext join tests
(``tests/integration/join_helpers.py``), real shadow workers answer, a ``shadow-eval
join`` process runs both stages, then ``alerts tail`` (with a webhook), ``status`` and
``topics create`` run from the command line. The final counts must be exactly those the
plaintext path asserts, and no password, key passphrase or webhook token may appear in
any log, output, metrics page, dead letter or snapshot.
"""

from __future__ import annotations

import http.server
import io
import json
import logging
import os
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import pytest
from confluent_kafka import (
    KafkaException,
)
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from streams.acls import ROLES, Acl, role_acls
from streams.broker import LocalBroker
from streams.broker.certs import CertificateAuthority
from streams.broker.config import free_port
from streams.kafka.config import client_config
from streams.settings import Settings, load_settings
from tests.integration.helpers import every_record
from tests.integration.join_helpers import (
    EXPERIMENTS,
    REPO,
    Expected,
    JoinProcess,
    Outputs,
    running_workers,
    serve_traffic,
    wait_for_predictions,
    write_experiments,
)

REQUESTS = 300
LISTENERS = ("sasl_ssl", "ssl")
PLAINTEXT = "plaintext"
FAIL_WITHIN_S = 30.0
WEBHOOK_TOKEN = f"xoxb{uuid.uuid4().hex}"

_RESOURCE = {
    "topic": ResourceType.TOPIC,
    "group": ResourceType.GROUP,
    "transactional-id": ResourceType.TRANSACTIONAL_ID,
    "cluster": ResourceType.BROKER,
}
_OPERATION = {
    "Read": AclOperation.READ,
    "Write": AclOperation.WRITE,
    "Describe": AclOperation.DESCRIBE,
    "IdempotentWrite": AclOperation.IDEMPOTENT_WRITE,
}


def _bindings(principal: str, acls: list[Acl]) -> list[AclBinding]:
    return [
        AclBinding(
            _RESOURCE[acl.resource],
            acl.name,
            ResourcePatternType.PREFIXED if acl.prefixed else ResourcePatternType.LITERAL,
            principal,
            "*",
            _OPERATION[operation],
            AclPermissionType.ALLOW,
        )
        for acl in acls
        for operation in acl.operations
    ]


def _settings(broker: LocalBroker, principal: str, listener: str, prefix: str) -> Settings:
    """A component's settings: only its client.properties (and the topic prefix)."""
    return load_settings(
        kafka_config_file=broker.secrets.properties(principal, listener),
        topic_prefix=prefix,
        partitions=4,
    )


def _grant(admin: Settings, principal: str, acls: list[Acl]) -> None:
    """Create the bindings and wait until the broker's authorizer has them all (the
    controller commits them first; a client racing ahead would be refused)."""
    client = AdminClient(client_config(admin))
    wanted = set(map(str, _bindings(principal, acls)))
    for future in client.create_acls(_bindings(principal, acls), request_timeout=30).values():
        future.result(timeout=30)
    mine = AclBindingFilter(
        ResourceType.ANY, None, ResourcePatternType.ANY, principal, None,
        AclOperation.ANY, AclPermissionType.ANY,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        seen = set(map(str, client.describe_acls(mine, request_timeout=10).result(timeout=15)))
        if wanted <= seen:
            return
        time.sleep(0.2)
    raise AssertionError(f"ACLs of {principal} not in effect after 30 s: {wanted - seen}")


def _revoke(admin: Settings, principal: str, acl: Acl, operation: str) -> None:
    client = AdminClient(client_config(admin))
    (binding,) = _bindings(principal, [Acl(acl.resource, acl.name, (operation,), acl.prefixed)])
    pattern = AclBindingFilter(
        binding.restype, binding.name, binding.resource_pattern_type,
        binding.principal, binding.host, binding.operation, binding.permission_type,
    )  # fmt: skip
    for future in client.delete_acls([pattern], request_timeout=30).values():
        future.result(timeout=30)


def _cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> tuple[subprocess.CompletedProcess[str], float]:
    """``shadow-eval ARGS`` with no SHADOW_ setting inherited; (result, seconds)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SHADOW_")}
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        cwd=REPO, env={**clean, **(env or {})}, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip
    return done, time.monotonic() - start


class _Webhook(http.server.BaseHTTPRequestHandler):
    bodies: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        self.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class Run:
    """What one secured run produced, for the assertions and the leak search."""

    listener: str
    settings: Settings
    expected: Expected
    counts: dict[str, dict[str, int]]
    alerts: int
    tail_lines: list[str]
    webhook_posts: int
    status: dict[str, object]
    texts: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def secured_runs(
    secure_broker: LocalBroker, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Run]:
    """Both listeners' runs and the plaintext one at once: most of a run is waiting
    (group joins, expiry)."""
    log_text = io.StringIO()
    handler = logging.StreamHandler(log_text)
    logging.getLogger().addHandler(handler)
    try:
        with ThreadPoolExecutor(len(LISTENERS) + 1) as pool:
            futures = {
                listener: pool.submit(
                    _run,
                    secure_broker if listener != PLAINTEXT else kafka_bootstrap,
                    listener,
                    tmp_path_factory.mktemp(f"secured-{listener}"),
                )
                for listener in (*LISTENERS, PLAINTEXT)
            }
            runs = {listener: future.result() for listener, future in futures.items()}
    finally:
        logging.getLogger().removeHandler(handler)
    for run in runs.values():
        run.texts["in-process logs"] = log_text.getvalue()
    return runs


@pytest.fixture(params=LISTENERS)
def secured_run(request: pytest.FixtureRequest, secured_runs: dict[str, Run]) -> Run:
    return secured_runs[request.param]


def _connect(settings: Settings) -> list[str]:
    """The command-line option naming the cluster (and its credentials) of ``settings``."""
    if settings.kafka_config_file is not None:
        return ["--kafka-config", str(settings.kafka_config_file)]
    return ["--bootstrap", settings.kafka_bootstrap]


def _run(broker: LocalBroker | str, listener: str, tmp: Path) -> Run:
    """The whole path over ``listener`` of the secured ``broker``, each component as its
    own principal; or over PLAINTEXT at ``broker`` (a bootstrap address), as the join
    tests run it."""
    started = time.monotonic()
    prefix = f"sec{listener.replace('_', '')}{uuid.uuid4().hex[:6]}"
    if isinstance(broker, str):
        admin = load_settings(kafka_bootstrap=broker, topic_prefix=prefix, partitions=4)
        roles = dict.fromkeys(ROLES, admin)
    else:
        admin = _settings(broker, "admin", listener, prefix)
        roles = {role: _settings(broker, role, listener, prefix) for role in ROLES}
    created, _ = _cli(
        "topics", "create", *_connect(admin), "--topic-prefix", prefix, "--partitions", "4"
    )
    assert created.returncode == 0, created.stderr
    if not isinstance(broker, str):
        for role, settings in roles.items():
            _grant(admin, f"User:{role}", role_acls(settings, role))

    with running_workers(roles["worker"]):
        expected = serve_traffic(roles["hook"], REQUESTS)
        wait_for_predictions(admin, 3 * (expected.paired + expected.no_live))
    metrics_port = free_port()
    join = JoinProcess(
        roles["join"], write_experiments(tmp, pair_ttl=5, label_ttl=8), tmp / "join.log",
        "--metrics-port", str(metrics_port),
    )  # fmt: skip
    outputs = Outputs(admin)
    try:
        outputs.wait_for(expected)
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as page:
            metrics = page.read().decode()
    finally:
        join.stop()
        outputs.close()

    webhook = type("Webhook", (_Webhook,), {"bodies": []})
    server = http.server.HTTPServer(("127.0.0.1", 0), webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/services/T0/B0/{WEBHOOK_TOKEN}"
    try:
        tail, _ = _cli(
            "alerts", "tail", "--json", "--topic-prefix", prefix, *_connect(roles["alerts"]),
            env={"SHADOW_ALERTS_WEBHOOK_URL": url},
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert tail.returncode == 0, tail.stderr
    status, _ = _cli("status", "--json", "--topic-prefix", prefix, *_connect(admin))
    assert status.returncode == 0, status.stderr
    counts = {name: outputs.counts(name) for name in EXPERIMENTS}
    print(f"secured run over {listener}: {counts} in {time.monotonic() - started:.0f}s")
    return Run(
        listener=listener,
        settings=admin,
        expected=expected,
        counts=counts,
        alerts=len(outputs.alerts) + len(outputs.verdicts),
        tail_lines=tail.stdout.splitlines(),
        webhook_posts=len(webhook.bodies),
        status=json.loads(status.stdout),
        texts={
            "join log": (tmp / "join.log").read_text(),
            "join /metrics": metrics,
            "alerts tail stdout": tail.stdout,
            "alerts tail stderr": tail.stderr,
            "status stdout": status.stdout,
            "status stderr": status.stderr,
            "topics create output": created.stdout + created.stderr,
            "webhook bodies": b"\n".join(webhook.bodies).decode(),
            "records": _all_records(admin),
        },
    )


def _all_records(settings: Settings) -> str:
    """Every record of every topic (inputs to DLQ, snapshots, join state), as text."""
    return b"\n".join(value for _, value in every_record(settings)).decode("latin-1")


def test_final_counts_equal_the_plaintext_paths(
    secured_run: Run, secured_runs: dict[str, Run]
) -> None:
    plaintext = secured_runs[PLAINTEXT]
    want = secured_run.expected.counts()
    assert plaintext.counts == {name: want for name in EXPERIMENTS}
    assert secured_run.counts == plaintext.counts


def test_alerts_tail_and_its_webhook_see_every_alert_and_verdict(secured_run: Run) -> None:
    assert secured_run.alerts > 0
    assert len(secured_run.tail_lines) == secured_run.alerts
    assert secured_run.webhook_posts == secured_run.alerts


def test_status_sees_the_join_groups(secured_run: Run) -> None:
    text = json.dumps(secured_run.status)
    assert f"shadow-eval-join-{secured_run.settings.topic_prefix}" in text


def test_no_secret_appears_anywhere(secured_run: Run, secure_broker: LocalBroker) -> None:
    secrets = {WEBHOOK_TOKEN: "the webhook token"}
    for principal in secure_broker.secrets.principals():
        secrets[principal.password] = f"{principal.name}'s password"
        secrets[principal.passphrase] = f"{principal.name}'s key passphrase"
    assert len(secured_run.texts["records"]) > 0
    leaks = [
        f"{what} in {where}"
        for where, text in secured_run.texts.items()
        for secret, what in secrets.items()
        if secret in text
    ]
    assert leaks == []


# -- failures: one clear line, no traceback, quickly ----------------------------------------


def _properties(broker: LocalBroker, listener: str, tmp: Path, **changes: str) -> Path:
    lines = broker.secrets.properties("admin", listener).read_text().splitlines()
    out = [line for line in lines if line.partition("=")[0] not in changes]
    out += [f"{key}={value}" for key, value in changes.items()]
    path = tmp / f"{listener}-changed.properties"
    path.write_text("\n".join(out) + "\n")
    return path


def _assert_one_clear_line(
    done: subprocess.CompletedProcess[str], seconds: float, word: str
) -> None:
    assert done.returncode != 0
    assert seconds < FAIL_WITHIN_S
    assert "Traceback" not in done.stderr + done.stdout
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, done.stderr
    assert word in errors[0].lower(), errors[0]


COMMANDS = (
    ("status",),
    ("topics", "create"),
    ("alerts", "tail"),
    ("worker", "--model", "tests.integration.candidates:same", "--version", "v2"),
    ("join", "--experiments", "deploy/experiments.toml"),
)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) if len(c) < 3 else c[0])
def test_a_wrong_password_fails_with_one_clear_line(
    command: tuple[str, ...], secure_broker: LocalBroker, tmp_path: Path
) -> None:
    config = _properties(secure_broker, "sasl_ssl", tmp_path, **{"sasl.password": "wrong"})
    done, seconds = _cli(*command, "--kafka-config", str(config), "--topic-prefix", "nope")
    _assert_one_clear_line(done, seconds, "authentication")
    assert "wrong" not in done.stderr + done.stdout


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) if len(c) < 3 else c[0])
def test_an_untrusted_ca_fails_with_one_clear_line(
    command: tuple[str, ...], secure_broker: LocalBroker, tmp_path: Path
) -> None:
    other = tmp_path / "other-ca.pem"
    other.write_bytes(CertificateAuthority.create("someone else").certificate_pem)
    config = _properties(secure_broker, "ssl", tmp_path, **{"ssl.ca.location": str(other)})
    done, seconds = _cli(*command, "--kafka-config", str(config), "--topic-prefix", "nope")
    _assert_one_clear_line(done, seconds, "certificate")


def test_a_missing_acl_names_the_resource(secure_broker: LocalBroker, tmp_path: Path) -> None:
    prefix = f"acl{uuid.uuid4().hex[:6]}"
    admin = _settings(secure_broker, "admin", "sasl_ssl", prefix)
    alerts = _settings(secure_broker, "alerts", "sasl_ssl", prefix)
    created, _ = _cli(
        "topics", "create", "--kafka-config", str(admin.kafka_config_file),
        "--topic-prefix", prefix, "--partitions", "4",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    acls = role_acls(alerts, "alerts")
    _grant(admin, "User:alerts", acls)
    env = {"SHADOW_KAFKA_CONFIG_FILE": str(alerts.kafka_config_file)}
    done, _ = _cli("alerts", "tail", "--topic-prefix", prefix, env=env)
    assert done.returncode == 0, done.stderr  # every ACL granted: an empty topic, read
    for operation in acls[0].operations:  # the ACL on the alerts topic, nothing else
        _revoke(admin, "User:alerts", acls[0], operation)
    done, seconds = _cli("alerts", "tail", "--topic-prefix", prefix, env=env)
    _assert_one_clear_line(done, seconds, "authoriz")
    assert alerts.topics.alerts in done.stderr


def test_acls_print_gives_kafka_acls_commands() -> None:
    done, _ = _cli("acls", "print", "--principal", "User:w", "--role", "worker")
    assert done.returncode == 0, done.stderr
    assert (
        "--allow-principal User:w --operation Read --operation Describe --topic shadow.inputs"
        in done.stdout
    )


def test_the_admin_is_a_super_user_and_others_are_not(secure_broker: LocalBroker) -> None:
    prefix = f"su{uuid.uuid4().hex[:6]}"
    for principal, listener, allowed in (("worker", "ssl", False), ("admin", "ssl", True)):
        settings = _settings(secure_broker, principal, listener, prefix)
        client = AdminClient(client_config(settings))
        future = client.create_topics([NewTopic(f"{prefix}.{principal}", 1, 1)])
        (result,) = future.values()
        if allowed:
            result.result(timeout=30)
        else:
            with pytest.raises(KafkaException, match="AUTHORIZATION_FAILED"):
                result.result(timeout=30)


def test_every_record_type_decodes_with_confluents_avro_deserializer(
    secured_runs: dict[str, Run],
) -> None:
    """Schema-Registry tooling reads every topic of a real run: each catalogue schema is
    registered (as a registry would store it) in confluent-kafka's ``mock://`` registry,
    and every record, re-framed with the registry's id, decodes with ``AvroDeserializer``
    to what our own codec decodes."""
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    from streams.codec import Codec
    from streams.codec.catalogue import SchemaCatalogue

    registry = SchemaRegistryClient.new_client({"url": f"mock://{uuid.uuid4().hex}"})
    catalogue, codec = SchemaCatalogue.default(), Codec()
    deserializer = AvroDeserializer(registry)
    registry_ids: dict[int, int] = {}
    decoded: dict[str, int] = {}
    for topic, value in every_record(secured_runs[PLAINTEXT].settings):
        ours = int.from_bytes(value[1:5], "big")
        entry = catalogue.by_id(ours)
        assert entry is not None, f"{topic}: unknown schema id {ours}"
        if ours not in registry_ids:
            schema = Schema.from_dict({"schema": json.dumps(entry.expanded), "schemaType": "AVRO"})
            registry_ids[ours] = registry.register_schema(f"{entry.name}-{ours}", schema)
        framed = value[:1] + registry_ids[ours].to_bytes(4, "big") + value[5:]
        record = deserializer(framed, SerializationContext(topic, MessageField.VALUE))
        assert isinstance(record, dict) and record, f"{topic}: {entry.name} decoded to {record!r}"
        assert type(codec.decode(value)).__name__ in entry.name or entry.name.endswith("Batch")
        decoded[entry.name] = decoded.get(entry.name, 0) + 1
    print(f"decoded with AvroDeserializer: {decoded}")
    wanted = {
        "dev.shadoweval.ModelInput", "dev.shadoweval.Prediction", "dev.shadoweval.GroundTruth",
        "dev.shadoweval.MetricsSnapshot", "dev.shadoweval.Alert", "dev.shadoweval.Verdict",
    }  # fmt: skip
    assert wanted <= set(decoded), decoded
