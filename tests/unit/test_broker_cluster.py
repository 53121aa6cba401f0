"""The local cluster's pure parts: node properties, persisted ports, coordinator lookup."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streams.broker import BrokerError, LocalCluster
from streams.broker.cluster import cluster_properties
from streams.broker.config import render_server_properties
from streams.broker.probe import coordinator_partition


def test_each_node_is_a_voter_with_three_replicas_and_no_unclean_election(
    tmp_path: Path,
) -> None:
    props = cluster_properties(3, [9001, 9002, 9003])
    text = render_server_properties(
        port=9100, controller_port=9003, log_dir=tmp_path, overrides=props
    )
    last = dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and line[0] != "#"
    )  # what Java's Properties keeps: the last value of each key
    assert last["node.id"] == "3"
    assert last["controller.quorum.voters"] == "1@127.0.0.1:9001,2@127.0.0.1:9002,3@127.0.0.1:9003"
    assert last["default.replication.factor"] == "3"
    assert last["offsets.topic.replication.factor"] == "3"
    assert last["transaction.state.log.replication.factor"] == "3"
    assert last["min.insync.replicas"] == "2"
    assert last["transaction.state.log.min.isr"] == "2"
    assert last["unclean.leader.election.enable"] == "false"


def test_a_two_node_cluster_keeps_two_replicas() -> None:
    props = cluster_properties(1, [9001, 9002])
    assert props["default.replication.factor"] == "2" and props["min.insync.replicas"] == "2"


def test_nodes_share_one_cluster_id_and_keep_their_ports(tmp_path: Path) -> None:
    first = LocalCluster(tmp_path / "cache", tmp_path / "c", brokers=3)
    again = LocalCluster(tmp_path / "cache", tmp_path / "c", brokers=3)
    assert first.bootstrap == again.bootstrap
    assert len(set(first.bootstrap.split(","))) == 3
    state = json.loads((tmp_path / "c" / "cluster.json").read_text())
    assert {b._cluster_id for b in first.nodes.values()} == {state["cluster_id"]}
    assert sorted(first.nodes) == [1, 2, 3]
    assert LocalCluster.exists(tmp_path / "c") and not LocalCluster.exists(tmp_path)


def test_another_broker_count_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    LocalCluster(tmp_path / "cache", tmp_path / "c", brokers=3)
    with pytest.raises(BrokerError, match="has 3 brokers, not 5"):
        LocalCluster(tmp_path / "cache", tmp_path / "c", brokers=5)


def test_an_unknown_node_is_named(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path / "cache", tmp_path / "c", brokers=3)
    with pytest.raises(BrokerError, match=r"no node 4: the nodes are \[1, 2, 3\]"):
        cluster.pause(4)


@pytest.mark.parametrize(
    ("key", "java_hash_code"),
    [("hello", 99162322), ("join-stage1", 480438006), ("polygenelubricants", -(2**31)),
     ("ünï", None)],
)  # fmt: skip
def test_coordinator_partition_is_kafkas_abs_hash_code_modulo(
    key: str, java_hash_code: int | None
) -> None:
    code = 0
    for char in key:  # String.hashCode over UTF-16 code units (all in the BMP here)
        code = (31 * code + ord(char)) & 0xFFFFFFFF
    signed = code - 2**32 if code >= 2**31 else code
    if java_hash_code is not None:
        assert signed == java_hash_code
    expected = 0 if signed == -(2**31) else abs(signed) % 50
    assert coordinator_partition(key, 50) == expected


def test_kafka_status_of_a_stopped_cluster_lists_every_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from streams.cli.kafka import kafka

    monkeypatch.setenv("SHADOW_CACHE_DIR", str(tmp_path / "cache"))
    args = ["status", "--brokers", "3", "--data-dir", str(tmp_path / "c")]
    result = CliRunner().invoke(kafka, args)
    assert result.exit_code == 3
    assert [line.split()[0] for line in result.output.splitlines()] == ["stopped"] * 3
    again = CliRunner().invoke(kafka, ["status", "--data-dir", str(tmp_path / "c")])
    assert again.exit_code == 3 and again.output.count("node") == 3  # found by its data dir
