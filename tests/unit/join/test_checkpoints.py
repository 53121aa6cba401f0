"""Stage-2 checkpoints: resuming from one gives what folding every event gives; a
checkpoint that no longer fits the experiments is ignored, never half-used."""

from __future__ import annotations

import doctest
import hashlib
import json
import logging
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streams
import streams.join.checkpoints
from streams.join.checkpoints import MAGIC, Checkpoint, Checkpoints
from streams.join.experiments import ExperimentsFile
from streams.join.judge import Judge
from streams.records import JoinEvent
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


def _files(checkpoints: Checkpoints) -> list[str]:
    return sorted(p.name for p in (checkpoints.directory / "partition-0").iterdir())


def test_saving_replaces_the_manifest_and_deletes_the_files_no_longer_named(
    tmp_path: Path,
) -> None:
    judge = Judge(EXPERIMENTS, dedup=False)
    checkpoints = _save(judge, tmp_path, 10)
    first = _files(checkpoints)
    _save(judge, tmp_path, 20)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint.key",
        "partition-0",
        "partition-0.manifest",
    ]
    second = _files(checkpoints)
    assert len(second) == len(NAMES) and not set(first) & set(second)
    loaded = checkpoints.load(0, NAMES, TOPIC)
    assert loaded is not None and loaded.offset == 20


def test_only_the_experiments_that_changed_are_written_again(tmp_path: Path) -> None:
    stream = events(400, seed=5)
    judge = Judge(EXPERIMENTS, dedup=False)
    checkpoints = Checkpoints(tmp_path, EXPERIMENTS.experiments)

    def save(offset: int) -> dict[str, str]:
        states = {name: judge.state(name) for name in NAMES}
        checkpoints.save(0, Checkpoint(offset, states, TOPIC), judge.changed)
        judge.changed.clear()
        return {f.split("-")[0]: f for f in _files(checkpoints)}

    now = stream[-1].timestamp_ms
    for event in stream:
        judge.apply(event)
    before = save(len(stream))
    for _ in range(4):  # the same clock: the hysteresis settles, nothing else moves
        for name in NAMES:
            judge.report(name, now)
    save(len(stream))
    for name in NAMES:
        judge.report(name, now)
    assert not judge.changed  # reported again, idle: nothing to write
    idle = save(len(stream))
    judge.apply(next(e for e in stream if e.experiment == "eta"))
    after = save(len(stream) + 1)
    changed = [tag for tag in before if after[tag] != idle[tag]]
    assert len(changed) == 1 and len(after) == len(NAMES)
    restored = Checkpoints(tmp_path, EXPERIMENTS.experiments).load(0, NAMES, TOPIC)
    assert restored is not None and restored.offset == len(stream) + 1
    assert restored.states["eta"].counts == judge.counts["eta"]
    assert restored.states["churn"].counts == judge.counts["churn"]


def test_a_report_that_only_moves_an_alert_rule_is_checkpointed(tmp_path: Path) -> None:
    """A rule firing at its third breach: the second is in no event and in no published
    record, but a restart between it and the third must not forget it."""
    rule = 'name = "thrice"\nmetric = "abs_error"\nfire_after = 3\nalpha = 0.3\n'
    thrice = ExperimentsFile.parse(EXPERIMENTS_TOML + "\n[[experiments.rules]]\n" + rule)
    stream = events(600, seed=6)
    now = stream[-1].timestamp_ms
    judge = Judge(thrice, dedup=False)
    checkpoints = Checkpoints(tmp_path, thrice.experiments)
    for event in stream:
        judge.apply(event)
    for name in NAMES:  # publishes the first verdicts, the first breach
        judge.report(name, now)
    checkpoints.save(0, Checkpoint(1, {n: judge.state(n) for n in NAMES}, TOPIC))
    judge.changed.clear()
    first = judge.report("eta", now)
    assert not [a for a in first.alerts if a.rule == "thrice"] and first.verdict is None
    assert judge.changed == {"eta"}
    checkpoints.save(0, Checkpoint(1, {n: judge.state(n) for n in NAMES}, TOPIC), judge.changed)
    restored = Checkpoints(tmp_path, thrice.experiments).load(0, NAMES, TOPIC)
    assert restored is not None
    resumed = Judge(thrice, dedup=False)
    resumed.restore("eta", restored.states["eta"])
    expected = judge.report("eta", now).alerts
    assert [a.rule for a in expected] == ["thrice"]
    assert resumed.report("eta", now).alerts == expected


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(st.integers(0, 1.0e9), min_size=1, max_size=4), seed=st.integers(0, 99))
def test_incremental_checkpoints_resume_to_the_same_snapshots(
    tmp_path_factory: pytest.TempPathFactory, cuts: list[int], seed: int
) -> None:
    """Fold with reports and incremental checkpoints in between (long runs of one
    experiment's events, so the other is idle across some checkpoints), resume from the
    last one and fold the rest: exactly what folding everything gives."""
    stream = _RUNS
    positions = sorted({cut % (len(stream) + 1) for cut in cuts})
    directory = tmp_path_factory.mktemp("checkpoints")
    whole, first = Judge(EXPERIMENTS, dedup=False), Judge(EXPERIMENTS, dedup=False)
    checkpoints = Checkpoints(directory, EXPERIMENTS.experiments)
    done, clock = 0, 0
    for position in positions:
        for event in stream[done:position]:
            whole.apply(event)
            first.apply(event)
            clock = max(clock, event.timestamp_ms)
        for name in NAMES if (position + seed) % 3 else ():  # some checkpoints after reports
            whole.report(name, clock)
            first.report(name, clock)
        states = {name: first.state(name) for name in NAMES}
        checkpoints.save(0, Checkpoint(position, states, TOPIC), first.changed)
        first.changed.clear()
        done = position
    checkpoint = Checkpoints(directory, EXPERIMENTS.experiments).load(0, NAMES, TOPIC)
    assert checkpoint is not None and checkpoint.offset == done
    resumed = Judge(EXPERIMENTS, dedup=False)
    for name, state in checkpoint.states.items():
        resumed.restore(name, state)
    for event in stream[done:]:
        whole.apply(event)
        resumed.apply(event)
        clock = max(clock, event.timestamp_ms)
    for name in NAMES:
        expected, got = whole.report(name, clock), resumed.report(name, clock)
        assert got.snapshot == expected.snapshot
        assert got.alerts == expected.alerts
        assert got.verdict == expected.verdict
        assert repr(got.evaluation) == repr(expected.evaluation)


def _runs() -> list[JoinEvent]:
    """Seeded events in long runs of one experiment each."""
    stream = events(500, seed=11)
    runs: list[JoinEvent] = []
    for chunk in range(0, len(stream), 300):
        part = stream[chunk : chunk + 300]
        runs += sorted(part, key=lambda e: e.experiment != NAMES[(chunk // 300) % 2])
    return runs


_RUNS = _runs()


def test_docstring_examples() -> None:
    assert doctest.testmod(streams.join.checkpoints).failed == 0


class _Planted:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path("/nonexistent-dir/planted-ran").touch, ())  # type: ignore[return-value]


def test_an_earlier_versions_pickle_is_never_unpickled_and_goes_at_the_next_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import pickle

    called: list[object] = []
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: called.append(a))
    monkeypatch.setattr(pickle, "load", lambda *a, **k: called.append(a))
    legacy = tmp_path / "partition-0.pickle"
    legacy.write_bytes(pickle.dumps(_Planted()))
    checkpoints = Checkpoints(tmp_path, EXPERIMENTS.experiments)
    with caplog.at_level(logging.INFO):
        assert checkpoints.load(0, NAMES, TOPIC) is None
    assert called == [] and "pickle, never loaded" in caplog.text
    _save(Judge(EXPERIMENTS, dedup=False), tmp_path, 10)
    assert not legacy.exists()


def test_a_signed_checkpoint_naming_another_class_runs_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The key is no defence against whoever can read the directory; the format is:
    a state file naming a function or a class outside the judge's is refused."""
    checkpoints = _save(Judge(EXPERIMENTS, dedup=False), tmp_path, 10)
    target = tmp_path / "ran"
    manifest = checkpoints.path(0).read_bytes()[len(MAGIC) + 32 :]
    body = json.loads(manifest)
    for planted in (
        {"o": "posix.system", "v": [f"touch {target}"]},
        {"o": "builtins.eval", "v": [f"open({str(target)!r}, 'w')"]},
        {"o": "streams.join.checkpoints.Checkpoints", "v": {"directory": "/"}},
    ):
        data = json.dumps(planted).encode()
        entry = body["experiments"]["churn"]
        (tmp_path / "partition-0" / entry["file"]).write_bytes(data)
        entry["sha256"] = hashlib.sha256(data).hexdigest()
        signed = json.dumps(body).encode()
        checkpoints.path(0).write_bytes(MAGIC + checkpoints._mac(signed) + signed)
        with caplog.at_level(logging.INFO):
            assert checkpoints.load(0, NAMES, TOPIC) is None
        assert "not a checkpoint class" in caplog.text
    assert not target.exists()


def test_a_state_file_changed_after_its_manifest_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    checkpoints = _save(Judge(EXPERIMENTS, dedup=False), tmp_path, 10)
    state_file = tmp_path / "partition-0" / _files(checkpoints)[0]
    state_file.write_bytes(state_file.read_bytes().replace(b"0", b"1", 1))
    with caplog.at_level(logging.INFO):
        assert checkpoints.load(0, NAMES, TOPIC) is None
    assert "does not match its digest" in caplog.text


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
