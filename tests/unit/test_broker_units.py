"""Pure helpers of the local broker: ports, log tails, properties, errors, cache lookup."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from streams.broker import BrokerError, LocalBroker, find_runtime, provision_kafka
from streams.broker.config import (
    free_port,
    port_in_use,
    random_cluster_id,
    render_server_properties,
)
from streams.broker.errors import tail
from streams.broker.process import is_alive, java_command
from streams.broker.provision import deploy_file


def _parse(text: str) -> dict[str, str]:
    """Java ``Properties`` semantics that matter here: ``key=value`` lines, last one wins."""
    pairs = (line.split("=", 1) for line in text.splitlines() if line and line[0] not in "#!")
    return {key.strip(): value.strip() for key, value in pairs}


def test_free_port_can_be_bound() -> None:
    port = free_port()
    assert not port_in_use(port)


def test_port_in_use_sees_a_listening_socket() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert port_in_use(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("content", "lines", "expected"),
    [
        ("", 30, ""),
        ("one\n", 30, "one"),
        ("a\nb\nc\nd\n", 2, "c\nd"),
        ("a\nb\nno newline at end", 1, "no newline at end"),
    ],
)
def test_tail_keeps_the_last_lines(tmp_path: Path, content: str, lines: int, expected: str) -> None:
    log = tmp_path / "log"
    log.write_text(content)
    assert tail(log, lines) == expected


def test_tail_from_an_offset_and_of_a_missing_file(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_text("old run\nnew run\n")
    assert tail(log, start=len("old run\n")) == "new run"
    assert tail(tmp_path / "missing") == ""


def test_tail_survives_bad_bytes(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_bytes(b"ok\n\xff\xfe\n")
    assert tail(log).startswith("ok\n")


def test_rendered_properties_are_a_single_local_kraft_node(tmp_path: Path) -> None:
    props = _parse(render_server_properties(port=9100, controller_port=9101, log_dir=tmp_path))

    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9100,CONTROLLER://127.0.0.1:9101"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9100"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9101"
    assert props["log.dirs"] == str(tmp_path)
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
    ):
        assert props[key] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["num.partitions"] == "6"
    assert props["auto.create.topics.enable"] == "true"
    assert "$" not in "".join(props.values())


def test_overrides_win_over_the_template(tmp_path: Path) -> None:
    text = render_server_properties(
        port=1, controller_port=2, log_dir=tmp_path, overrides={"num.partitions": "3"}
    )
    assert _parse(text)["num.partitions"] == "3"


def test_a_bad_template_placeholder_is_a_broker_error(tmp_path: Path) -> None:
    with pytest.raises(BrokerError, match="placeholder"):
        render_server_properties(port=1, controller_port=2, log_dir=tmp_path, template="x=${nope}")


def test_cluster_ids_look_like_kafka_uuids() -> None:
    ids = {random_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cluster_id in ids:
        assert len(cluster_id) == 22 and not cluster_id.startswith("-")
        assert set(cluster_id) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        )


def test_broker_error_shows_the_log_tail(tmp_path: Path) -> None:
    error = BrokerError("it broke", log_tail="last line", log_path=tmp_path / "broker.log")
    assert error.reason == "it broke"
    assert str(error).splitlines()[0] == "it broke"
    assert str(tmp_path / "broker.log") in str(error)
    assert str(error).endswith("last line")
    assert str(BrokerError("plain")) == "plain"


def test_deploy_files_are_found() -> None:
    assert deploy_file("kafka-pom.xml").name == "kafka-pom.xml"
    assert "${port}" in deploy_file("server.properties.template").read_text()
    with pytest.raises(BrokerError, match="cannot find"):
        deploy_file("no-such-file")


def test_the_pom_pins_an_slf4j_2_api() -> None:
    pom = deploy_file("kafka-pom.xml").read_text()
    assert "<artifactId>slf4j-api</artifactId>" in pom
    assert "<slf4j.version>2.0." in pom


def test_find_runtime_needs_marker_and_jar(tmp_path: Path) -> None:
    assert find_runtime(tmp_path) is None
    libs = tmp_path / "kafka" / "libs"
    libs.mkdir(parents=True)
    (tmp_path / "kafka" / "VERSION").write_text("4.4.0\n")
    assert find_runtime(tmp_path) is None  # marker without the jar
    (libs / "kafka_2.13-4.4.0.jar").write_bytes(b"")

    runtime = find_runtime(tmp_path)

    assert runtime is not None and runtime.version == "4.4.0"
    assert runtime.classpath == f"{libs}/*"
    assert provision_kafka(tmp_path, mvn="no-such-mvn") == runtime  # cached: no Maven needed


def test_missing_maven_is_named(tmp_path: Path) -> None:
    with pytest.raises(BrokerError, match=r"Maven .*not on PATH"):
        provision_kafka(tmp_path, mvn="no-such-mvn-for-shadow-eval")


def test_missing_java_is_named(tmp_path: Path) -> None:
    broker = LocalBroker(tmp_path / "cache", tmp_path / "data", java="no-such-java-for-shadow-eval")
    with pytest.raises(BrokerError, match=r"Java .*not on PATH"):
        broker.start()


def test_status_of_an_empty_data_dir_is_stopped(tmp_path: Path) -> None:
    broker = LocalBroker(tmp_path / "cache", tmp_path / "data")
    status = broker.status()
    assert not status.running and status.pid is None and status.bootstrap is None
    assert broker.stop() is False


def test_a_stale_pid_file_is_not_trusted(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "broker.pid").write_text(f"{os.getpid()}\n")  # alive, but not a broker
    assert not LocalBroker(tmp_path / "cache", data).status().running


def test_is_alive_checks_the_command_line() -> None:
    assert is_alive(os.getpid())
    assert not is_alive(os.getpid(), marker="kafka.Kafka /no/such/server.properties")


def test_java_command_uses_a_small_heap() -> None:
    command = java_command("java", "/libs/*", "kafka.Kafka", "server.properties")
    assert "-Xmx512m" in command and "-Xms256m" in command
    assert command[-4:] == ["-cp", "/libs/*", "kafka.Kafka", "server.properties"]
