"""A real Schema Registry end to end: every component registers and resolves its ids there.

The session's Apicurio Registry (``schema_registry``, Confluent-compatible API) gets an
unrelated subject first, so its ids cannot be the catalogue's. Then the hook serves the
join tests' seeded workload, real shadow workers answer, a ``shadow-eval join`` process
runs both stages, all with ``SHADOW_SCHEMA_REGISTRY_URL`` set. Every record of every topic
(inputs to dead letters, join events and state, snapshots, alerts, verdicts) must carry a
registry id and decode with confluent-kafka's ``AvroDeserializer`` to what our codec reads.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
from confluent_kafka import Producer

from streams.broker.config import free_port
from streams.codec import RegistryError, codec_for
from streams.codec.catalogue import SchemaCatalogue
from streams.codec.convert import TO_AVRO
from streams.kafka.config import client_config
from streams.records import JoinEventBatch
from streams.settings import Settings, load_settings
from tests.integration.helpers import create_topics, every_record
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
FAIL_WITHIN_S = 30.0
NOT_AVRO = b"\x00\x00\x00\x00\x01 not avro at all"


@dataclass
class RegistryRun:
    settings: Settings
    expected: Expected
    counts: dict[str, dict[str, int]]
    records: list[tuple[str, bytes]]


@pytest.fixture(scope="module")
def registry_run(
    kafka_bootstrap: str, schema_registry: str, tmp_path_factory: pytest.TempPathFactory
) -> RegistryRun:
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

    started = time.monotonic()
    unrelated = {"type": "record", "name": f"U{uuid.uuid4().hex}", "fields": []}
    with SchemaRegistryClient({"url": schema_registry}) as client:
        subject = f"unrelated-{uuid.uuid4().hex}"
        client.register_schema(subject, Schema(json.dumps(unrelated), "AVRO"))
    settings = load_settings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=f"sr{uuid.uuid4().hex[:8]}",
        partitions=4,
        schema_registry_url=schema_registry,
    )
    create_topics(settings)
    # One record that is not Avro: the worker's dead letter is a record type too.
    producer = Producer(client_config(settings))
    producer.produce(settings.topics.inputs, NOT_AVRO, key=b"junk")
    assert producer.flush(10) == 0
    tmp = tmp_path_factory.mktemp("registry-run")
    with running_workers(settings):
        expected = serve_traffic(settings, REQUESTS)
        wait_for_predictions(settings, 3 * (expected.paired + expected.no_live))
    join = JoinProcess(settings, write_experiments(tmp, pair_ttl=5, label_ttl=8), tmp / "join.log")
    outputs = Outputs(settings)
    try:
        outputs.wait_for(expected)
    finally:
        join.stop()
        outputs.close()
    counts = {name: outputs.counts(name) for name in EXPERIMENTS}
    records = list(every_record(settings))
    print(f"registry run: {len(records)} records in {time.monotonic() - started:.0f}s")
    return RegistryRun(settings, expected, counts, records)


def test_the_counts_are_the_plaintext_paths(registry_run: RegistryRun) -> None:
    want = registry_run.expected.counts()
    assert registry_run.counts == {name: want for name in EXPERIMENTS}


def test_every_record_type_carries_a_registry_id_and_decodes_with_avro_deserializer(
    registry_run: RegistryRun, schema_registry: str, request: pytest.FixtureRequest
) -> None:
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    client = SchemaRegistryClient({"url": schema_registry})
    request.addfinalizer(client.close)
    deserializer = AvroDeserializer(client)
    ours = codec_for(registry_run.settings, register=False)
    catalogue = SchemaCatalogue.default()
    ids: dict[str, set[int]] = {}
    decoded: Counter[str] = Counter()

    for topic, value in registry_run.records:
        if value == NOT_AVRO:
            continue  # the junk we wrote ourselves
        schema_id = int.from_bytes(value[1:5], "big")
        name = json.loads(client.get_schema(schema_id).schema_str)["name"]
        full = name if "." in name else f"dev.shadoweval.{name}"
        record = ours.decode(value, topic=topic)
        assert TO_AVRO[type(record)][0] == full, f"{topic}: id {schema_id} is {full}"
        theirs = deserializer(value, SerializationContext(topic, MessageField.VALUE))
        assert theirs == TO_AVRO[type(record)][1](record), f"{topic}: {full} differs"
        ids.setdefault(full, set()).add(schema_id)
        decoded[full] += 1
        if isinstance(record, JoinEventBatch):  # its events are nested records, compared too
            decoded["dev.shadoweval.JoinEvent"] += len(record.events)
    print(f"decoded with AvroDeserializer: {dict(decoded)}; registry ids: {ids}")
    # MetricResult is only ever nested in snapshots and verdicts, never a record of its own.
    wanted = {name for name, _ in TO_AVRO.values()} - {"dev.shadoweval.MetricResult"}
    assert wanted <= set(decoded), dict(decoded)
    assert all(len(found) == 1 for found in ids.values()), ids  # one id per schema
    moved = [n for n, found in ids.items() if found != {catalogue.latest(n).id}]
    assert moved, f"every id equals the catalogue's: {ids}"


def _cli(*args: str, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SHADOW_")}
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        cwd=REPO, env={**clean, **env}, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return done, time.monotonic() - start


def _command(command: str, kafka_bootstrap: str, tmp_path: Path) -> list[str]:
    """``worker`` or ``join`` on fresh topics of the session broker."""
    prefix = f"srx{uuid.uuid4().hex[:6]}"
    create_topics(load_settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=prefix))
    if command == "worker":
        args = ["worker", "--model", "tests.integration.candidates:same", "--version", "v2"]
    else:
        experiments = write_experiments(tmp_path)
        args = ["join", "--experiments", str(experiments), "--data-dir", str(tmp_path / "d")]
    return [*args, "--topic-prefix", prefix]


def _assert_one_clear_line(
    done: subprocess.CompletedProcess[str], seconds: float, url: str
) -> None:
    assert done.returncode != 0
    assert seconds < FAIL_WITHIN_S
    assert "Traceback" not in done.stderr + done.stdout
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, done.stderr
    assert "Schema Registry" in errors[0] and url in errors[0], errors[0]


def test_an_unreachable_registry_stops_the_worker_with_one_clear_line(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    command = "worker"  # the join's start is the same call: its wrong password, below
    url = f"http://127.0.0.1:{free_port()}/apis/ccompat/v7"
    env = {"SHADOW_KAFKA_BOOTSTRAP": kafka_bootstrap, "SHADOW_SCHEMA_REGISTRY_URL": url}
    done, seconds = _cli(*_command(command, kafka_bootstrap, tmp_path), env=env)
    _assert_one_clear_line(done, seconds, url)


# -- TLS: the registry client verifies the server and presents its own certificate ---------


@dataclass
class TlsRegistry:
    url: str
    ca: Path
    cert: Path
    key: Path
    passphrase_file: Path
    other_ca: Path


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRegistry]:
    """A second registry serving HTTPS only and requiring a client certificate."""
    from streams.broker.certs import CertificateAuthority, write_private
    from streams.broker.registry import SchemaRegistryServer

    tmp = tmp_path_factory.mktemp("registry-tls")
    ca = CertificateAuthority.create("registry-test-ca")
    server, client = (
        ca.issue("registry", client=False),
        ca.issue("app", client=True, passphrase=PASSPHRASE),
    )
    files = {name: tmp / name for name in ("ca.pem", "server.pem", "server.key", "client.pem",
                                           "client.key", "passphrase", "other-ca.pem")}  # fmt: skip
    files["ca.pem"].write_bytes(ca.certificate_pem)
    files["server.pem"].write_bytes(server.certificate)
    write_private(files["server.key"], server.key)
    files["client.pem"].write_bytes(client.certificate)
    write_private(files["client.key"], client.key)
    write_private(files["passphrase"], PASSPHRASE)
    files["other-ca.pem"].write_bytes(CertificateAuthority.create("someone else").certificate_pem)
    registry = SchemaRegistryServer(
        load_settings().cache_dir, tmp / "server",
        tls=(files["server.pem"], files["server.key"], files["ca.pem"]),
    )  # fmt: skip
    url = registry.start(timeout=180)
    try:
        yield TlsRegistry(url, files["ca.pem"], files["client.pem"], files["client.key"],
                          files["passphrase"], files["other-ca.pem"])  # fmt: skip
    finally:
        registry.stop()


PASSPHRASE = f"pass{uuid.uuid4().hex}"


def _tls_settings(registry: TlsRegistry, **changes: object) -> Settings:
    values: dict[str, object] = {
        "schema_registry_url": registry.url,
        "schema_registry_cafile": registry.ca,
        "schema_registry_certfile": registry.cert,
        "schema_registry_keyfile": registry.key,
        "schema_registry_key_password_file": registry.passphrase_file,
    }
    values.update(changes)
    return Settings(**values)  # type: ignore[arg-type]


def test_mutual_tls_with_an_encrypted_client_key_registers_and_reads(
    tls_registry: TlsRegistry,
) -> None:
    from streams.records import GroundTruth

    codec = codec_for(_tls_settings(tls_registry))
    record = GroundTruth("r1", "churn", 1, "yes")
    assert (
        codec_for(_tls_settings(tls_registry), register=False).decode(codec.encode(record))
        == record
    )


@pytest.mark.parametrize("case", ["untrusted server", "no client certificate"])
def test_tls_failures_are_one_registry_error_without_secrets(
    tls_registry: TlsRegistry, case: str
) -> None:
    if case == "untrusted server":
        settings = _tls_settings(tls_registry, schema_registry_cafile=tls_registry.other_ca)
        word = "CERTIFICATE_VERIFY_FAILED"
    else:
        settings = Settings(
            schema_registry_url=tls_registry.url, schema_registry_cafile=tls_registry.ca
        )
        word = "Schema Registry"
    with pytest.raises(RegistryError) as caught:
        codec_for(settings)
    assert word in str(caught.value)
    assert PASSPHRASE not in str(caught.value)


# -- basic auth: through a real HTTP hop that checks the credentials -------------------------
# (Apicurio's own authentication is OIDC only; this proxy in front of it checks HTTP basic
# auth the way a gateway in front of a Confluent registry would.)

REGISTRY_USER, REGISTRY_PASSWORD = "shadow", f"pw{uuid.uuid4().hex}"


class _BasicAuthGateway(http.server.BaseHTTPRequestHandler):
    upstream: ClassVar[str] = ""
    refused: ClassVar[list[str]] = []

    def _forward(self) -> None:
        token = base64.b64encode(f"{REGISTRY_USER}:{REGISTRY_PASSWORD}".encode()).decode()
        if self.headers.get("Authorization") != f"Basic {token}":
            self.refused.append(self.path)
            self._reply(401, b'{"error_code": 401, "message": "Unauthorized"}')
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
        forwarded = urllib.request.Request(
            self.upstream + self.path, data=body, method=self.command,
            headers={"Content-Type": self.headers.get("Content-Type", "application/json")},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(forwarded, timeout=30) as response:
                self._reply(response.status, response.read())
        except urllib.error.HTTPError as exc:
            self._reply(exc.code, exc.read())

    do_GET = do_POST = do_PUT = do_DELETE = _forward

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def gateway(schema_registry: str) -> Iterator[tuple[str, type[_BasicAuthGateway]]]:
    """``(url, handler)``: the session registry behind a gateway asking for basic auth."""
    upstream, _, path = schema_registry.partition("/apis")
    handler = type("Gateway", (_BasicAuthGateway,), {"upstream": upstream, "refused": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/apis{path}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_basic_auth_from_a_password_file_reaches_the_registry(
    gateway: tuple[str, type[_BasicAuthGateway]], tmp_path: Path
) -> None:
    from streams.records import GroundTruth

    url, _ = gateway
    password_file = tmp_path / "registry-password"
    password_file.write_text(REGISTRY_PASSWORD + "\n")
    settings = Settings(
        schema_registry_url=url,
        schema_registry_username=REGISTRY_USER,
        schema_registry_password_file=password_file,
    )
    record = GroundTruth("r1", "churn", 1, "yes")
    assert codec_for(settings, register=False).decode(codec_for(settings).encode(record)) == record


def test_a_wrong_registry_password_stops_the_join_with_one_clear_line(
    gateway: tuple[str, type[_BasicAuthGateway]],
    kafka_bootstrap: str,
    tmp_path: Path,
) -> None:
    url, handler = gateway
    command = "join"
    wrong = f"wrong{uuid.uuid4().hex}"
    env = {
        "SHADOW_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "SHADOW_SCHEMA_REGISTRY_URL": url,
        "SHADOW_SCHEMA_REGISTRY_USERNAME": REGISTRY_USER,
        "SHADOW_SCHEMA_REGISTRY_PASSWORD": wrong,
    }
    refused = len(handler.refused)
    done, seconds = _cli(*_command(command, kafka_bootstrap, tmp_path), env=env)
    _assert_one_clear_line(done, seconds, url)
    assert "401" in done.stderr or "Unauthorized" in done.stderr, done.stderr
    assert wrong not in done.stderr + done.stdout
    assert len(handler.refused) > refused  # it did ask the registry
