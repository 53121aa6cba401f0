"""A local multi-broker Kafka 4.x cluster (KRaft) on loopback, for fault tests and users.

Each node is a :class:`~streams.broker.local.LocalBroker` (combined broker + controller)
with its own ports and data directory; the nodes share one cluster id and one static
controller quorum. Topics get three replicas, ``min.insync.replicas=2`` and no unclean
leader election: the settings under which the project's exactly-once and no-loss
guarantees are stated (README "Reliability").
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

from streams.broker.config import HOST, free_port, random_cluster_id
from streams.broker.errors import BrokerError
from streams.broker.local import BrokerStatus, LocalBroker
from streams.broker.probe import coordinator_partition, metadata
from streams.settings import Settings, load_settings

__all__ = ["LocalCluster", "cluster_properties"]

Progress = Callable[[str], None]
INTERNAL_PARTITIONS = 6
"""``offsets.topic.num.partitions`` and ``transaction.state.log.num.partitions`` of
``deploy/server.properties.template``: which partition coordinates a group or id."""


def cluster_properties(node_id: int, controller_ports: list[int]) -> dict[str, str]:
    """The ``server.properties`` a cluster node adds to the single-node template.

    Examples
    --------
    >>> props = cluster_properties(2, [9001, 9002, 9003])
    >>> props["controller.quorum.voters"]
    '1@127.0.0.1:9001,2@127.0.0.1:9002,3@127.0.0.1:9003'
    >>> props["node.id"], props["min.insync.replicas"], props["default.replication.factor"]
    ('2', '2', '3')
    """
    replicas = min(len(controller_ports), 3)
    in_sync = str(min(replicas, 2))
    voters = ",".join(f"{i}@{HOST}:{port}" for i, port in enumerate(controller_ports, 1))
    return {
        "node.id": str(node_id),
        "controller.quorum.voters": voters,
        "default.replication.factor": str(replicas),
        "min.insync.replicas": in_sync,
        "unclean.leader.election.enable": "false",
        "offsets.topic.replication.factor": str(replicas),
        "transaction.state.log.replication.factor": str(replicas),
        "transaction.state.log.min.isr": in_sync,
        "share.coordinator.state.topic.replication.factor": str(replicas),
        "share.coordinator.state.topic.min.isr": in_sync,
    }


class LocalCluster:
    """``brokers`` Kafka 4.x nodes on 127.0.0.1, each broker and controller.

    Parameters
    ----------
    settings
        A ``Settings`` (its ``cache_dir`` holds the jars) or the cache directory itself.
    data_dir
        Holds ``cluster.json`` and one ``node<N>`` directory per node;
        ``<cache_dir>/cluster`` by default.
    brokers
        How many nodes (node ids 1..brokers).
    properties
        Extra ``server.properties`` entries of every node (short timeouts in tests).
    die_with_parent, progress, java, mvn
        As for :class:`~streams.broker.local.LocalBroker`.

    Examples
    --------
    >>> with LocalCluster(data_dir=tmp / "cluster") as cluster:  # doctest: +SKIP
    ...     leader = cluster.leader("shadow.inputs", 0)
    ...     cluster.kill(leader)
    ...     cluster.start(leader)
    """

    def __init__(
        self,
        settings: Settings | Path | str | None = None,
        data_dir: Path | str | None = None,
        *,
        brokers: int = 3,
        properties: Mapping[str, str] | None = None,
        die_with_parent: bool = False,
        progress: Progress | None = None,
        java: str = "java",
        mvn: str = "mvn",
    ) -> None:
        if settings is None:
            settings = load_settings()
        cache_dir = settings.cache_dir if isinstance(settings, Settings) else Path(settings)
        self.data_dir = Path(data_dir) if data_dir is not None else cache_dir / "cluster"
        state = self._read_state()
        if state and state.get("brokers") != brokers:
            raise BrokerError(
                f"the cluster in {self.data_dir} has {state.get('brokers')} brokers, not "
                f"{brokers}; use another --data-dir or the same count"
            )
        ports: list[int] = state.get("ports") or [free_port() for _ in range(brokers)]
        controllers: list[int] = state.get("controller_ports") or [
            free_port() for _ in range(brokers)
        ]
        cluster_id: str = state.get("cluster_id") or random_cluster_id()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "cluster.json").write_text(json.dumps({
            "brokers": brokers, "ports": ports, "controller_ports": controllers,
            "cluster_id": cluster_id,
        }, indent=2) + "\n")  # fmt: skip
        self.nodes: dict[int, LocalBroker] = {
            node: LocalBroker(
                settings,
                self.data_dir / f"node{node}",
                port=ports[node - 1],
                controller_port=controllers[node - 1],
                properties={**cluster_properties(node, controllers), **(properties or {})},
                die_with_parent=die_with_parent,
                progress=progress,
                cluster_id=cluster_id,
                java=java,
                mvn=mvn,
            )
            for node in range(1, brokers + 1)
        }

    @staticmethod
    def exists(data_dir: Path) -> bool:
        """Whether ``data_dir`` holds a cluster (rather than a single broker)."""
        return (Path(data_dir) / "cluster.json").exists()

    def _read_state(self) -> dict[str, Any]:
        try:
            state: dict[str, Any] = json.loads((self.data_dir / "cluster.json").read_text())
        except (OSError, ValueError):
            return {}
        return state

    @property
    def bootstrap(self) -> str:
        """Every node's ``127.0.0.1:PORT``, comma-separated (clients find the rest)."""
        return ",".join(node.bootstrap for node in self.nodes.values())

    def _node(self, node: int) -> LocalBroker:
        try:
            return self.nodes[node]
        except KeyError:
            raise BrokerError(f"no node {node}: the nodes are {sorted(self.nodes)}") from None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, node: int | None = None, timeout: float = 120.0) -> str:
        """Start every node (or only ``node``) and wait until the cluster sees all of them.

        Every node is launched before any is waited for: a node answers only once a
        quorum of controllers runs. Returns :attr:`bootstrap`.
        """
        chosen = [self._node(node)] if node is not None else list(self.nodes.values())
        launched = [broker for broker in chosen if broker.launch()]
        deadline = time.monotonic() + timeout
        for broker in launched:
            broker.wait_ready(max(deadline - time.monotonic(), 1.0))
        self.wait_for_brokers(max(deadline - time.monotonic(), 1.0))
        return self.bootstrap

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop every node (SIGTERM, SIGKILL after ``timeout``); ``False`` if none ran."""
        # All at once: the last node of a quorum stopped one by one waits for the others.
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            stopped = list(pool.map(lambda broker: broker.stop(timeout), self.nodes.values()))
        return any(stopped)

    def kill(self, node: int, signum: signal.Signals = signal.SIGKILL) -> None:
        """Stop ``node`` with ``signum``: SIGKILL as a crash, SIGTERM as a clean shutdown."""
        broker = self._node(node)
        if signum == signal.SIGKILL:
            broker.kill()
        elif signum == signal.SIGTERM:
            broker.stop()
        else:
            raise BrokerError(f"kill takes SIGKILL or SIGTERM, not {signum!r}; see pause()")

    def pause(self, node: int) -> None:
        """Freeze ``node`` (SIGSTOP): its connections stay open, nothing answers."""
        self._node(node).pause()

    def resume(self, node: int) -> None:
        """Unfreeze ``node`` (SIGCONT)."""
        self._node(node).resume()

    def status(self) -> list[BrokerStatus]:
        """Each node's status, by node id."""
        return [self.nodes[node].status() for node in sorted(self.nodes)]

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what the cluster says -------------------------------------------------------------
    def _client(self) -> dict[str, Any]:
        running = [b.bootstrap for b in self.nodes.values() if b.status().running]
        return {"bootstrap.servers": ",".join(running) or self.bootstrap}

    def leader(self, topic: str, partition: int, timeout: float = 10.0) -> int | None:
        """The node id leading ``topic``'s ``partition`` (``None``: no leader now)."""
        found = metadata(self._client(), timeout, topic).topics.get(topic)
        if found is None or found.error is not None or partition not in found.partitions:
            raise BrokerError(f"no partition {partition} of topic {topic!r} in the cluster")
        leader: int = found.partitions[partition].leader
        return leader if leader >= 0 else None

    def transaction_coordinator(self, transactional_id: str) -> int | None:
        """The node coordinating ``transactional_id`` (leader of its ``__transaction_state``
        partition)."""
        partition = coordinator_partition(transactional_id, INTERNAL_PARTITIONS)
        return self.leader("__transaction_state", partition)

    def group_coordinator(self, group: str) -> int | None:
        """The node coordinating consumer group ``group``."""
        return self.leader("__consumer_offsets", coordinator_partition(group, INTERNAL_PARTITIONS))

    def wait_for_brokers(self, timeout: float = 60.0) -> None:
        """Wait until the cluster's metadata lists every running node."""
        want = {node for node, b in self.nodes.items() if b.status().running}
        deadline = time.monotonic() + timeout
        seen: set[int] = set()
        while time.monotonic() < deadline:
            try:
                seen = set(metadata(self._client(), 5.0).brokers)
            except BrokerError:
                seen = set()
            if want <= seen:
                return
            time.sleep(0.3)
        raise BrokerError(f"the cluster lists nodes {sorted(seen)}, not {sorted(want)}")

    def wait_in_sync(self, timeout: float = 60.0) -> None:
        """Wait until every partition's in-sync replicas are all its replicas (a restarted
        node has caught up), so the next fault starts from a whole cluster."""
        deadline = time.monotonic() + timeout
        lagging: list[str] = []
        while time.monotonic() < deadline:
            topics = metadata(self._client(), 5.0).topics
            lagging = [
                f"{name}[{p}]"
                for name, topic in topics.items()
                for p, info in topic.partitions.items()
                if set(info.isrs) != set(info.replicas)
            ]
            if not lagging:
                return
            time.sleep(0.5)
        raise BrokerError(f"partitions still under-replicated after {timeout:.0f}s: {lagging[:8]}")
