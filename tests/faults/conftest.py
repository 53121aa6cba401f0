"""One three-broker cluster per session, shared by the fault scenarios.

Its timeouts are the template's short ones (a dead broker is fenced after 4 s), so a
scenario's outage lasts seconds, not minutes. Each scenario gets its own topic prefix.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from streams.broker import BrokerError, LocalCluster
from streams.settings import Settings, load_settings
from tests.integration.helpers import delete_topics


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A running ``LocalCluster(brokers=3)``: RF 3, min.insync.replicas 2."""
    made = LocalCluster(load_settings(), tmp_path_factory.mktemp("cluster"), die_with_parent=True)
    try:
        made.start(timeout=180)
    except BrokerError as exc:
        made.stop()
        pytest.fail(f"cannot start the local 3-broker cluster for the fault tests:\n{exc}", False)
    try:
        yield made
    finally:
        made.stop()


@pytest.fixture
def cluster_settings(cluster: LocalCluster) -> Iterator[Settings]:
    """``Settings`` on the cluster (every node whole again) with a unique topic prefix,
    3 partitions and 3 replicas; the topics are deleted after the test."""
    cluster.start(timeout=120)  # a node a failed scenario left down
    for node in cluster.nodes:
        cluster.resume(node)
    settings = load_settings(
        kafka_bootstrap=cluster.bootstrap,
        topic_prefix=f"f{uuid.uuid4().hex[:8]}",
        partitions=3,
        replication_factor=3,
    )
    yield settings
    cluster.start(timeout=120)
    delete_topics(settings)
