"""The join agent on the real broker, driven by the hook and real shadow workers.

One seeded synthetic stream is served once; the same bytes are then copied to fresh topic
sets for the two-worker and the kill -9 runs, so all three must agree exactly.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicCollection, TopicPartition

from streams.kafka.config import client_config
from streams.records import AlertState, MetricsSnapshot
from streams.settings import Settings, load_settings
from streams.status import collect_status
from streams.topics import create_topics
from tests.integration.helpers import admin_client, delete_topics, re_create_topics
from tests.integration.join_helpers import (
    EXPERIMENTS,
    Expected,
    JoinProcess,
    Outputs,
    copy_traffic,
    running_workers,
    serve_traffic,
    wait_for_predictions,
    write_experiments,
)

REQUESTS = 2500


def _settings(bootstrap: str, prefix: str) -> Settings:
    return load_settings(kafka_bootstrap=bootstrap, topic_prefix=prefix, partitions=4)


@pytest.fixture(scope="module")
def served(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, Expected]]:
    settings = _settings(kafka_bootstrap, f"join{time.time_ns() % 10**8}")
    create_topics(settings)
    with running_workers(settings):
        expected = serve_traffic(settings, REQUESTS)
        wait_for_predictions(settings, 3 * (expected.paired + expected.no_live))
    yield settings, expected
    delete_topics(settings)


def _fresh_copy(served: tuple[Settings, Expected], name: str) -> Iterator[Settings]:
    source, _ = served
    target = _settings(source.kafka_bootstrap, f"{source.topic_prefix}{name}")
    create_topics(target)
    copy_traffic(source, target)
    yield target
    delete_topics(target)


def _run(
    settings: Settings,
    tmp_path: Path,
    expected: Expected,
    processes: int = 1,
    args: tuple[tuple[str, ...], ...] = (),
) -> Outputs:
    """Run ``processes`` join processes (or one per entry of ``args``) to the end."""
    experiments = write_experiments(tmp_path)
    per_process = args or ((),) * processes
    joins = [
        JoinProcess(settings, experiments, tmp_path / f"join{i}.log", *extra)
        for i, extra in enumerate(per_process)
    ]
    outputs = Outputs(settings)
    try:
        outputs.wait_for(expected)
    finally:
        for join in joins:
            join.stop()
        outputs.close()
    return outputs


@pytest.fixture(scope="module")
def clean_run(
    served: tuple[Settings, Expected], tmp_path_factory: pytest.TempPathFactory
) -> Outputs:
    settings, expected = served
    return _run(settings, tmp_path_factory.mktemp("clean"), expected)


def _decisions(outputs: Outputs) -> dict[str, str]:
    return {name: outputs.snapshots[name].decision for name in EXPERIMENTS}


def test_final_counts_equal_what_was_produced(
    clean_run: Outputs, served: tuple[Settings, Expected]
) -> None:
    _, expected = served
    for name in EXPERIMENTS:
        assert clean_run.counts(name) == expected.counts()


def test_worse_candidate_raises_a_worse_alert_and_is_rejected(clean_run: Outputs) -> None:
    firing = [
        a for a in clean_run.alerts if a.experiment == "worse" and a.state is AlertState.FIRING
    ]
    assert [a.result.metric for a in firing] == ["correct"]
    assert firing[0].direction == "worse"
    assert firing[0].result.effect is not None and firing[0].result.effect < 0
    assert "correct" in firing[0].message
    assert clean_run.snapshots["worse"].decision == "reject"
    assert clean_run.verdicts[-1].experiment in EXPERIMENTS
    assert [v.decision.value for v in clean_run.verdicts if v.experiment == "worse"][-1] == "REJECT"


def test_identical_candidate_raises_nothing(clean_run: Outputs) -> None:
    assert [a for a in clean_run.alerts if a.experiment == "same"] == []
    snapshot: MetricsSnapshot = clean_run.snapshots["same"]
    assert snapshot.decision == "continue"
    assert "insufficient evidence" in snapshot.reason


def test_slower_candidate_raises_a_latency_alert(clean_run: Outputs) -> None:
    firing = [
        a for a in clean_run.alerts if a.experiment == "slow" and a.state is AlertState.FIRING
    ]
    assert [a.result.metric for a in firing] == ["latency_ms"]
    assert firing[0].result.effect is not None and firing[0].result.effect > 0


def test_late_out_of_order_labels_are_joined(
    clean_run: Outputs, served: tuple[Settings, Expected]
) -> None:
    _, expected = served
    correct = [
        r
        for r in clean_run.snapshots["worse"].results
        if r.metric == "correct" and r.segment == "" and r.test == "msprt"
    ]
    assert correct and correct[0].n == expected.labelled


def test_two_join_workers_give_the_same_final_metrics(
    served: tuple[Settings, Expected], clean_run: Outputs, tmp_path: Path
) -> None:
    for settings in _fresh_copy(served, "two"):
        outputs = _run(settings, tmp_path, served[1], processes=2)
        assert {n: outputs.counts(n) for n in EXPERIMENTS} == {
            n: clean_run.counts(n) for n in EXPERIMENTS
        }
        assert _decisions(outputs) == _decisions(clean_run)


def test_stages_in_separate_processes_give_the_same_final_metrics(
    served: tuple[Settings, Expected], clean_run: Outputs, tmp_path: Path
) -> None:
    for settings in _fresh_copy(served, "split"):
        stages = (("--stage", "pairs"), ("--stage", "judge"))
        outputs = _run(settings, tmp_path, served[1], args=stages)
        assert {n: outputs.counts(n) for n in EXPERIMENTS} == {
            n: clean_run.counts(n) for n in EXPERIMENTS
        }
        assert _decisions(outputs) == _decisions(clean_run)


def test_kill_9_and_restart_keeps_counts_exact_and_the_verdict(
    served: tuple[Settings, Expected], clean_run: Outputs, tmp_path: Path
) -> None:
    """kill -9 mid-stream (after stage 2's first checkpoint), restart: exact counts, the
    same verdicts, and stage 2 resumed from the checkpoint; then a clean stop and a
    restart of stage 2 alone re-reads nothing."""
    _, expected = served
    for settings in _fresh_copy(served, "kill"):
        experiments = write_experiments(tmp_path, checkpoint_every=1)
        outputs = Outputs(settings)
        # Small transactions, so that the kill lands mid-stream (and likely mid-transaction).
        first = JoinProcess(settings, experiments, tmp_path / "first.log", "--batch-size", "50")
        _wait_for_a_checkpoint_of_events(settings, tmp_path, outputs)
        first.kill()  # mid-stream: pairs done, labels and expiry still to come
        assert outputs.counts("worse").get("expired_no_label", 0) == 0
        second = JoinProcess(settings, experiments, tmp_path / "second.log")
        try:
            outputs.wait_for(expected)
        finally:
            second.stop()  # SIGTERM: a last checkpoint of everything folded
        assert {n: outputs.counts(n) for n in EXPERIMENTS} == {
            n: clean_run.counts(n) for n in EXPERIMENTS
        }
        assert _decisions(outputs) == _decisions(clean_run)
        resumed = _log_lines(second.log, "resumes at offset")
        assert max(int(line.rsplit(" ", 1)[1]) for line in resumed) > 0, resumed
        _restart_judge_after_a_clean_stop(settings, experiments, tmp_path, outputs, clean_run)


def _wait_for_a_checkpoint_of_events(
    settings: Settings, tmp_path: Path, outputs: Outputs | None = None, timeout: float = 90
) -> None:
    """Until stage 2 (data dir under ``tmp_path``) has folded events and checkpointed since."""
    watch = outputs or Outputs(settings)
    deadline = time.monotonic() + timeout
    try:
        while not watch.counts("worse").get("paired"):
            assert time.monotonic() < deadline, "stage 2 reported no pair"
            watch.poll(0.5)
    finally:
        if outputs is None:
            watch.close()
    folded = time.time()
    checkpoints = tmp_path / "join-data" / "judge"
    while not any(p.stat().st_mtime > folded for p in checkpoints.glob("*/partition-*.manifest")):
        assert time.monotonic() < deadline, "stage 2 wrote no checkpoint"
        time.sleep(0.2)


def _log_lines(path: Path, text: str, timeout: float = 60) -> list[str]:
    """The lines of a join's log containing ``text`` (waiting for the first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = [line for line in path.read_text(errors="replace").splitlines() if text in line]
        if lines:
            return lines
        time.sleep(0.5)
    raise AssertionError(f"{path.name} never logged {text!r}:\n{path.read_text()[-3000:]}")


def _restart_judge_after_a_clean_stop(
    settings: Settings, experiments: Path, tmp_path: Path, outputs: Outputs, clean_run: Outputs
) -> None:
    """Stage 2 alone, after the worker stopped cleanly: it re-reads nothing, reports the
    same counts and publishes no alert or verdict again."""
    restarted = time.time() * 1000
    third = JoinProcess(settings, experiments, tmp_path / "third.log", "--stage", "judge")
    try:
        owns = _log_lines(third.log, "stage 2 owns partitions")[0]
        fresh: dict[str, MetricsSnapshot] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(fresh) < len(EXPERIMENTS):
            outputs.poll(0.5)
            fresh = {n: s for n, s in outputs.snapshots.items() if s.timestamp_ms > restarted}
    finally:
        third.stop()
        outputs.close()
    assert owns.endswith("re-reading up to 0 records"), owns
    assert {n: dict(s.counts) for n, s in fresh.items()} == {
        n: dict(clean_run.snapshots[n].counts) for n in EXPERIMENTS
    }
    assert [a for a in outputs.alerts if a.timestamp_ms > restarted] == []
    assert [v for v in outputs.verdicts if v.timestamp_ms > restarted] == []
    # Its group committed what it judged (a partition may end in a transaction marker).
    (judged,) = [g for g in collect_status(settings).groups if g.group.endswith("-judge")]
    assert judged.lag.get(settings.topics.join_events, 0) <= settings.partitions, judged


def test_a_re_created_topic_is_re_read_not_resumed(
    served: tuple[Settings, Expected], clean_run: Outputs, tmp_path: Path
) -> None:
    """Topics deleted and created again under the same prefix, same data dir: stage 2
    ignores the checkpoints of the old join-events topic, even where the new one is
    already longer, and counts the new stream alone."""
    for settings in _fresh_copy(served, "again"):
        experiments = write_experiments(tmp_path, checkpoint_every=1)
        first = JoinProcess(settings, experiments, tmp_path / "first.log", "--batch-size", "50")
        try:
            _wait_for_a_checkpoint_of_events(settings, tmp_path)
        finally:
            first.stop()  # SIGTERM: checkpoints what it folded
        old_id, old_ends = _events_topic(settings)
        re_create_topics(settings)
        # Every partition of the new topic starts past the old checkpoints, so only the
        # topic id can tell the two apart. Aborted records take offsets but no committed
        # reader sees them: the new stream's content is the copied traffic alone.
        _pad_with_aborted_records(settings, old_ends)
        new_id, _ = _events_topic(settings)
        assert new_id != old_id
        source, source_expected = served
        copy_traffic(source, settings)
        outputs = _run(settings, tmp_path, source_expected)
        assert _log_lines(tmp_path / "join0.log", "another topic of that name")
        assert {n: outputs.counts(n) for n in EXPERIMENTS} == {
            n: clean_run.counts(n) for n in EXPERIMENTS
        }


def _events_topic(settings: Settings) -> tuple[str, list[int]]:
    """The join-events topic's id and the end offset of each of its partitions."""
    admin = admin_client(settings)
    topic = settings.topics.join_events
    described = admin.describe_topics(TopicCollection([topic]), request_timeout=10)
    topic_id = str(described[topic].result(timeout=10).topic_id)
    consumer = Consumer(client_config(settings, **{"group.id": f"ends-{time.time_ns()}"}))
    try:
        ends = [
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(settings.partitions)
        ]
    finally:
        consumer.close()
    return topic_id, ends


def _pad_with_aborted_records(settings: Settings, ends: list[int]) -> None:
    """Move each partition of the join-events topic to at least ``ends`` (plus one) with
    records of one aborted transaction."""
    producer = Producer(
        client_config(settings, **{"transactional.id": f"pad-{settings.topic_prefix}"})
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    for partition, end in enumerate(ends):
        for _ in range(end + 1):
            producer.produce(settings.topics.join_events, b"aborted", partition=partition)
        producer.poll(0)
    producer.flush(30)
    producer.abort_transaction(30)
