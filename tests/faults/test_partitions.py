"""Partitions added to per-request topics while the join runs, tried as a new user would:
``shadow-eval topics create --partitions 3``, then ``shadow-eval join`` without
``--partitions`` (it takes the count from the topics); partitions added to two
per-request topics stop both join processes within 30 s with one clear error naming the
topics and counts, and a restart refuses at once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from confluent_kafka.admin import NewPartitions

from streams.settings import Settings
from tests.faults.workload import EXPERIMENTS_TOML, OWNS, REPO, Service
from tests.integration.helpers import admin_client

ADDED_TO = 6
REFUSED_WITHIN_S = 30.0


def _cli(settings: Settings, *args: str) -> list[str]:
    return [*args, "--bootstrap", settings.kafka_bootstrap, "--topic-prefix", settings.topic_prefix]


def _join(settings: Settings, directory: Path) -> Service:
    directory.mkdir(parents=True, exist_ok=True)
    experiments = directory / "experiments.toml"
    experiments.write_text(EXPERIMENTS_TOML)
    command = _cli(settings, "join", "--experiments", str(experiments))
    command += ["--data-dir", str(directory / "data"), "--log-level", "INFO"]
    return Service(directory.name, command, directory / "join.log")


def test_added_partitions_stop_the_join_with_one_clear_error(
    cluster_settings: Settings, tmp_path: Path
) -> None:
    settings = cluster_settings
    env = {**os.environ, "SHADOW_REPLICATION_FACTOR": "3", "PYTHONPATH": str(REPO)}
    create = _cli(settings, "topics", "create", "--partitions", "3")
    created = subprocess.run(
        [sys.executable, "-m", "streams.cli", *create],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    joins = [_join(settings, tmp_path / f"join{i}") for i in range(2)]
    try:
        deadline = time.monotonic() + 120
        while not all(OWNS.search(j.text()) for j in joins):
            assert all(j.alive() for j in joins), [j.text()[-3000:] for j in joins]
            assert time.monotonic() < deadline, [j.text()[-3000:] for j in joins]
            time.sleep(0.2)
        grown = [settings.topics.inputs, settings.topics.live_predictions]
        admin = admin_client(settings)
        futures = admin.create_partitions([NewPartitions(t, ADDED_TO) for t in grown])
        for future in futures.values():
            future.result(timeout=30)
        added = time.monotonic()
        for service in joins:
            service.process.wait(timeout=REFUSED_WITHIN_S + 15)
        refused_s = time.monotonic() - added
        for service in joins:
            text = service.text()
            assert service.process.returncode == 1, text[-3000:]
            errors = [line for line in text.splitlines() if line.startswith("Error: ")]
            assert len(errors) == 1, text[-3000:]
            assert "partitions changed while the join runs" in errors[0]
            assert f"{settings.topics.inputs}={ADDED_TO}" in errors[0]
            assert f"{settings.topics.join_state}=3" in errors[0]
        assert refused_s <= REFUSED_WITHIN_S
        again = _join(settings, tmp_path / "join-again")
        joins.append(again)  # stopped (its log closed) below
        again.process.wait(timeout=60)
        assert again.process.returncode == 1
        assert "not co-partitioned" in again.text() and f"{grown[0]}={ADDED_TO}" in again.text()
        print(f"scenario=partitions added refused_after_s={refused_s:.1f}")
    finally:
        for service in joins:
            service.stop()
