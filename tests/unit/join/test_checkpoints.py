"""Stage-2 checkpoints: resuming from one gives what folding every event gives; a
checkpoint that no longer fits the experiments is ignored, never half-used."""

from __future__ import annotations

import doctest
import logging
from pathlib import Path

import pytest

import streams
import streams.join.checkpoints
from streams.join.checkpoints import Checkpoint, Checkpoints
from streams.join.experiments import ExperimentsFile
from streams.join.judge import Judge
from tests.unit.join.test_judge import EXPERIMENTS, EXPERIMENTS_TOML, events

NAMES = [e.name for e in EXPERIMENTS.experiments]
TOPIC = "Pc8fc3zLRTeXNH3HEjWsMg"


def _save(judge: Judge, directory: Path, offset: int) -> Checkpoints:
    checkpoints = Checkpoints(directory, EXPERIMENTS.experiments)
    checkpoints.save(0, Checkpoint(offset, {name: judge.state(name) for name in NAMES}, TOPIC))
    return checkpoints


@pytest.mark.parametrize("cut", [0, 1, 700, 2400])
def test_resuming_from_a_checkpoint_equals_folding_every_event(tmp_path: Path, cut: int) -> None:
    stream = events(1200, seed=8)
    assert len(stream) > cut
    whole = Judge(EXPERIMENTS, dedup=False)
    first = Judge(EXPERIMENTS, dedup=False)
    for event in stream[:cut]:
        whole.apply(event)
        first.apply(event)
    for name in NAMES:  # a published decision is part of the state
        first.report(name, stream[cut].timestamp_ms)
        whole.report(name, stream[cut].timestamp_ms)
    checkpoint = _save(first, tmp_path, cut).load(0, NAMES, TOPIC)
    assert checkpoint is not None and checkpoint.offset == cut

    resumed = Judge(EXPERIMENTS, dedup=False)
    for name, state in checkpoint.states.items():
        resumed.restore(name, state)
    for event in stream[cut:]:
        whole.apply(event)
        resumed.apply(event)
    now = stream[-1].timestamp_ms
    for name in NAMES:
        expected, got = whole.report(name, now), resumed.report(name, now)
        assert got.snapshot == expected.snapshot
        assert got.alerts == expected.alerts
        assert got.verdict == expected.verdict
        # repr: exact floats, nan included, and every mapping in order
        assert repr(got.evaluation) == repr(expected.evaluation)
    assert whole.counts["churn"]["labelled"] > 500


def test_a_checkpoint_is_a_copy_not_the_live_state(tmp_path: Path) -> None:
    stream = events(200, seed=9)
    judge = Judge(EXPERIMENTS, dedup=False)
    checkpoints = _save(judge, tmp_path, 0)
    for event in stream:
        judge.apply(event)
    checkpoint = checkpoints.load(0, NAMES, TOPIC)
    assert checkpoint is not None
    assert sum(checkpoint.states["churn"].counts.values()) == 0


def test_a_changed_experiment_invalidates_its_partition(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _save(Judge(EXPERIMENTS, dedup=False), tmp_path, 10)
    text = EXPERIMENTS_TOML.replace('primary_metric = "correct"', 'primary_metric = "brier"')
    changed = ExperimentsFile.parse(text)
    with caplog.at_level(logging.INFO):
        assert Checkpoints(tmp_path, changed.experiments).load(0, NAMES, TOPIC) is None
    assert "experiments of this partition changed" in caplog.text
    # An unchanged file (parsed again) still fits.
    again = ExperimentsFile.parse(EXPERIMENTS_TOML)
    assert Checkpoints(tmp_path, again.experiments).load(0, NAMES, TOPIC) is not None


def test_an_experiment_added_to_the_partition_invalidates_it(tmp_path: Path) -> None:
    _save(Judge(EXPERIMENTS, dedup=False), tmp_path, 10)
    checkpoints = Checkpoints(tmp_path, EXPERIMENTS.experiments)
    assert checkpoints.load(0, NAMES[:1], TOPIC) is None
    assert checkpoints.load(1, NAMES, TOPIC) is None  # no file for that partition


def test_a_checkpoint_of_a_re_created_topic_is_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    checkpoints = _save(Judge(EXPERIMENTS, dedup=False), tmp_path, 10)
    with caplog.at_level(logging.INFO):
        assert checkpoints.load(0, NAMES, "AnotherTopicIdxxxxxxxx") is None
    assert "another topic of that name" in caplog.text


def test_another_version_or_a_broken_file_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    checkpoints = _save(Judge(EXPERIMENTS, dedup=False), tmp_path, 10)
    monkeypatch.setattr(streams, "__version__", "99.0")
    with caplog.at_level(logging.INFO):
        assert checkpoints.load(0, NAMES, TOPIC) is None
    assert "written by shadow-eval" in caplog.text
    monkeypatch.undo()
    assert checkpoints.load(0, NAMES, TOPIC) is not None
    path = checkpoints.path(0)
    path.write_bytes(path.read_bytes()[:100])
    assert checkpoints.load(0, NAMES, TOPIC) is None
    assert "not signed" in caplog.text


def test_saving_replaces_the_file_whole(tmp_path: Path) -> None:
    judge = Judge(EXPERIMENTS, dedup=False)
    checkpoints = _save(judge, tmp_path, 10)
    _save(judge, tmp_path, 20)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.key", "partition-0.pickle"]
    loaded = checkpoints.load(0, NAMES, TOPIC)
    assert loaded is not None and loaded.offset == 20


def test_docstring_examples() -> None:
    assert doctest.testmod(streams.join.checkpoints).failed == 0


class _Planted:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path("/nonexistent-dir/planted-ran").touch, ())  # type: ignore[return-value]


def test_a_planted_pickle_is_never_unpickled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import pickle

    checkpoints = _save(Judge(EXPERIMENTS, dedup=False), tmp_path, 10)
    called: list[object] = []
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: called.append(a))
    checkpoints.path(0).write_bytes(pickle.dumps(_Planted()))  # no signature at all
    with caplog.at_level(logging.WARNING):
        assert checkpoints.load(0, NAMES, TOPIC) is None
    assert called == [] and "not signed" in caplog.text


def test_files_are_private_and_signed_with_the_given_key(tmp_path: Path) -> None:
    judge = Judge(EXPERIMENTS, dedup=False)
    directory = tmp_path / "judge"
    mine = Checkpoints(directory, EXPERIMENTS.experiments, key=b"k" * 32)
    mine.save(0, Checkpoint(10, {n: judge.state(n) for n in NAMES}, TOPIC))
    assert directory.stat().st_mode & 0o777 == 0o700
    assert mine.path(0).stat().st_mode & 0o777 == 0o600
    shared = Checkpoints(directory, EXPERIMENTS.experiments, key=b"k" * 32)
    assert shared.load(0, NAMES, TOPIC) is not None  # another worker with the same key
    assert (
        Checkpoints(directory, EXPERIMENTS.experiments, key=b"x" * 32).load(0, NAMES, TOPIC) is None
    )
