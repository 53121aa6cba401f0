"""Stage-2 checkpoints: the judge's state per join-events partition, on local disk.

Stage 2's state is a fold over the join-events topic. Without a checkpoint, a restart or
a rebalance re-reads each partition from its beginning, which takes longer the longer
the topic is retained. A checkpoint holds the state of the experiments of one partition
together with the offset of the next event to fold: the fold of the events before that
offset, so resuming from any checkpoint, however old, gives the same state as a full
re-read. That is also why any worker may use any worker's checkpoint of the same topic.

A checkpoint is used only for the topic it was made from (its Kafka topic id: a topic
deleted and created again has a new one), when every experiment of its partition is
defined exactly as when it was written (the experiment's TOML table), and by the same
shadow-eval version; otherwise the partition is re-read from the start.

Incremental: each experiment's state is a file of its own (``partition-<p>/``), and a
save rewrites only the experiments whose state changed since the partition's last save
or load, so an idle experiment costs nothing. The partition's manifest
(``partition-<p>.manifest``: offset, topic id, and each experiment's file and its
SHA-256) is written last and replaces the previous one by a rename, so the offset never
claims events that the files it names do not reflect; a crash at any point leaves the
previous manifest and every file it names whole. Files no manifest names any more are
deleted after the rename.

The files are JSON read by :mod:`streams.join.state_codec`, which can build only data
and the judge's own classes: a checkpoint can never run code or construct anything else,
whoever wrote it. The manifest is also authenticated: it starts with an HMAC-SHA256 of
its body, keyed with ``SHADOW_CHECKPOINT_KEY`` (a secret every worker sharing the
directory is given) or, without one, with a random key kept in the directory itself
(``checkpoint.key``, 0600), and names each state file's digest; a checkpoint whose HMAC
or a digest does not match (planted, truncated, written with another key) is ignored
and the partition re-read. The directory is 0700 and the files 0600. Checkpoints of
earlier versions (pickles, ``partition-<p>.pickle``) are never loaded: the partition is
re-read once and the old file deleted at its first new save.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streams
from streams.join import state_codec
from streams.join.experiments import Experiment
from streams.join.judge import ExperimentState

__all__ = ["Checkpoint", "Checkpoints", "fingerprint"]

log = logging.getLogger(__name__)

FORMAT = 4  # 4: JSON (state_codec), one file per experiment, manifest (was pickle)
"""Bumped whenever what a checkpoint holds changes shape."""
MAGIC = b"SECKPT4\n"
"""Starts every manifest: then 32 bytes of HMAC-SHA256, then the manifest's JSON."""
KEY_FILE = "checkpoint.key"


def fingerprint(experiment: Experiment) -> str:
    """A digest of the experiment's definition: its TOML table as written."""
    definition = experiment.table if experiment.table is not None else repr(experiment)
    text = json.dumps(definition, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The state of one partition's experiments before ``offset``."""

    offset: int
    """The next join event to fold."""
    states: Mapping[str, ExperimentState]
    topic_id: str
    """The Kafka id of the join-events topic folded."""


class Checkpoints:
    """The checkpoint files of one stage-2 consumer group, one per partition.

    Parameters
    ----------
    directory
        Where the files go (created when first needed).
    experiments
        The experiments judged: a checkpoint is valid only for their current definitions.
    key
        The HMAC key of the files (``SHADOW_CHECKPOINT_KEY``); a random one kept in
        ``directory`` when ``None``.

    Examples
    --------
    >>> import tempfile
    >>> from streams.join.experiments import ExperimentsFile
    >>> from streams.join.judge import Judge
    >>> exps = ExperimentsFile.parse('''
    ... [[experiments]]
    ... name = "e"
    ... model = "m"
    ... live_version = "v1"
    ... candidate = "v2"
    ... ''')
    >>> judge = Judge(exps, dedup=False)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     checkpoints = Checkpoints(Path(tmp), exps.experiments)
    ...     checkpoints.save(0, Checkpoint(42, {"e": judge.state("e")}, "Pc8fc3zLRTeX"))
    ...     restored = checkpoints.load(0, ["e"], "Pc8fc3zLRTeX")
    >>> restored.offset, sorted(restored.states)
    (42, ['e'])
    """

    def __init__(
        self, directory: Path, experiments: Iterable[Experiment], key: bytes | None = None
    ) -> None:
        self.directory = directory
        self._fingerprints = {e.name: fingerprint(e) for e in experiments}
        self._key = key
        self._saved: dict[int, dict[str, Any]] = {}
        """Per partition, the manifest of its last save or load."""

    def _private_directory(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.directory.chmod(0o700)

    def _signing_key(self) -> bytes:
        if self._key is None:
            path = self.directory / KEY_FILE
            try:
                self._key = path.read_bytes()
            except FileNotFoundError:
                self._private_directory()
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as out:
                    out.write(secrets.token_bytes(32))
                self._key = path.read_bytes()
        return self._key

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._signing_key(), body, hashlib.sha256).digest()

    def path(self, partition: int) -> Path:
        """The partition's manifest."""
        return self.directory / f"partition-{partition}.manifest"

    def _folder(self, partition: int) -> Path:
        return self.directory / f"partition-{partition}"

    def forget(self, partition: int) -> None:
        """The caller re-reads ``partition`` from the start: its next save writes every
        experiment (the files of an earlier checkpoint no longer reflect the state)."""
        self._saved.pop(partition, None)

    def save(
        self, partition: int, checkpoint: Checkpoint, changed: Container[str] | None = None
    ) -> None:
        """Write the experiments in ``changed`` (all when None) and those this object
        has no file of since the partition's last save or load, then the manifest."""
        self._private_directory()
        folder = self._folder(partition)
        folder.mkdir(mode=0o700, exist_ok=True)
        saved = self._saved.get(partition, {})
        kept = saved["experiments"] if saved.get("topic_id") == checkpoint.topic_id else {}
        entries: dict[str, dict[str, str]] = {}
        for name, state in checkpoint.states.items():
            entry = kept.get(name)
            if entry is None or changed is None or name in changed:
                entry = self._write_state(folder, name, state)
            entries[name] = entry
        if entries != kept:
            _sync_directory(folder)  # the new files exist before a manifest names them
        body = {
            "format": FORMAT,
            "version": streams.__version__,
            "topic_id": checkpoint.topic_id,
            "offset": checkpoint.offset,
            "experiments": entries,
        }
        if body == saved:
            return  # nothing new: the manifest on disk says it all
        data = json.dumps(body, sort_keys=True).encode()
        target = self.path(partition)
        partial = target.with_suffix(f".{os.getpid()}.partial")
        _write_new(partial, MAGIC + self._mac(data) + data, replace=True)
        partial.replace(target)
        _sync_directory(self.directory)
        self._saved[partition] = body
        named = {entry["file"] for entry in entries.values()}
        for path in folder.iterdir():
            if path.name not in named:
                path.unlink(missing_ok=True)
        (self.directory / f"partition-{partition}.pickle").unlink(missing_ok=True)

    def _write_state(self, folder: Path, name: str, state: ExperimentState) -> dict[str, str]:
        data = state_codec.dumps(state)
        tag = hashlib.sha256(name.encode()).hexdigest()[:16]
        file = f"{tag}-{secrets.token_hex(8)}.state"
        _write_new(folder / file, data)
        return {
            "fingerprint": self._fingerprints[name],
            "file": file,
            "sha256": hashlib.sha256(data).hexdigest(),
        }

    def load(self, partition: int, experiments: Iterable[str], topic_id: str) -> Checkpoint | None:
        """The partition's checkpoint if it was made from topic ``topic_id`` and holds
        exactly ``experiments``, as defined now.

        None (and a log line saying why) when there is none, it cannot be read, or it
        was written for another topic, other experiment definitions or another
        shadow-eval version.
        """
        self._saved.pop(partition, None)
        path = self.path(partition)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            legacy = self.directory / f"partition-{partition}.pickle"
            if legacy.exists():
                log.info("join: ignoring checkpoint %s: an earlier version's pickle, never "
                         "loaded; re-reading the partition", legacy)  # fmt: skip
            return None
        except OSError as exc:
            log.warning("join: ignoring checkpoint %s: unreadable (%s)", path, exc)
            return None
        head, data = raw[: len(MAGIC) + 32], raw[len(MAGIC) + 32 :]
        if not (
            head.startswith(MAGIC) and hmac.compare_digest(head[len(MAGIC) :], self._mac(data))
        ):
            log.warning(
                "join: ignoring checkpoint %s: not signed with this worker's checkpoint key "
                "(planted, damaged, or written with another SHADOW_CHECKPOINT_KEY); "
                "re-reading the partition",
                path,
            )
            return None
        try:
            body = json.loads(data)
            entries: dict[str, dict[str, str]] = body["experiments"]
            fingerprints = {name: entry["fingerprint"] for name, entry in entries.items()}
        except Exception as exc:  # a foreign file: re-read the topic instead
            log.warning("join: ignoring checkpoint %s: unreadable (%s)", path, exc)
            return None
        expected = {name: self._fingerprints[name] for name in experiments}
        if body.get("format") != FORMAT or type(body.get("offset")) is not int:
            why = "another checkpoint format"
        elif body.get("version") != streams.__version__:
            why = f"written by shadow-eval {body.get('version')}"
        elif body.get("topic_id") != topic_id:
            why = "made from another topic of that name (deleted and created again since)"
        elif fingerprints != expected:
            why = "the experiments of this partition changed since"
        else:
            try:
                states = {name: self._read_state(partition, e) for name, e in entries.items()}
            except Exception as exc:  # a file missing, damaged or not a judge's state
                why = f"a state file is unusable ({exc})"
            else:
                self._saved[partition] = body
                return Checkpoint(body["offset"], states, topic_id)
        log.info("join: ignoring checkpoint %s: %s", path, why)
        return None

    def _read_state(self, partition: int, entry: Mapping[str, Any]) -> ExperimentState:
        file = entry["file"]
        if Path(file).name != file or file.startswith("."):
            raise ValueError(f"not a state file name: {file!r}")
        data = (self._folder(partition) / file).read_bytes()
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise ValueError(f"{file} does not match its digest")
        state = state_codec.loads(data)
        if type(state) is not ExperimentState:
            raise ValueError(f"{file} holds no experiment state")
        return state


def _write_new(path: Path, data: bytes, replace: bool = False) -> None:
    """Write ``path`` (0600) and flush it to disk before returning."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if replace else os.O_EXCL)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _sync_directory(path: Path) -> None:
    """Make the names created or renamed in ``path`` durable (their data already is)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
