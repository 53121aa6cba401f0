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

The files are pickles, so a file is *authenticated before it is unpickled*: each starts
with an HMAC-SHA256 of its body, keyed with ``SHADOW_CHECKPOINT_KEY`` (a secret every
worker sharing the directory is given) or, without one, with a random key kept in the
directory itself (``checkpoint.key``, 0600). A file whose HMAC does not match (planted,
truncated, written with another key) is ignored and the partition re-read: it is never
unpickled. The directory is 0700 and the files 0600.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import pickle
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import streams
from streams.join.experiments import Experiment
from streams.join.judge import ExperimentState

__all__ = ["Checkpoint", "Checkpoints", "fingerprint"]

log = logging.getLogger(__name__)

FORMAT = 3  # 3: exact PairedT sums, AsymptoticCS, prediction-powered state (issue 16)
"""Bumped whenever what a checkpoint holds changes shape."""
MAGIC = b"SECKPT1\n"
"""Starts every checkpoint file: then 32 bytes of HMAC-SHA256, then the pickle."""
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
        return self.directory / f"partition-{partition}.pickle"

    def save(self, partition: int, checkpoint: Checkpoint) -> None:
        """Write atomically: a crash mid-write leaves the previous checkpoint whole."""
        self._private_directory()
        body = {
            "format": FORMAT,
            "version": streams.__version__,
            "fingerprints": {name: self._fingerprints[name] for name in checkpoint.states},
            "topic_id": checkpoint.topic_id,
            "offset": checkpoint.offset,
            "states": dict(checkpoint.states),
        }
        target = self.path(partition)
        partial = target.with_suffix(f".{os.getpid()}.partial")
        data = pickle.dumps(body, protocol=pickle.HIGHEST_PROTOCOL)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(MAGIC + self._mac(data) + data)
            out.flush()
            os.fsync(out.fileno())
        partial.replace(target)

    def load(self, partition: int, experiments: Iterable[str], topic_id: str) -> Checkpoint | None:
        """The partition's checkpoint if it was made from topic ``topic_id`` and holds
        exactly ``experiments``, as defined now.

        None (and a log line saying why) when there is none, it cannot be read, or it
        was written for another topic, other experiment definitions or another
        shadow-eval version.
        """
        path = self.path(partition)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
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
            body = pickle.loads(data)  # authenticated above
        except Exception as exc:  # a truncated or foreign file: re-read the topic instead
            log.warning("join: ignoring checkpoint %s: unreadable (%s)", path, exc)
            return None
        expected = {name: self._fingerprints[name] for name in experiments}
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            why = "another checkpoint format"
        elif body.get("version") != streams.__version__:
            why = f"written by shadow-eval {body.get('version')}"
        elif body.get("topic_id") != topic_id:
            why = "made from another topic of that name (deleted and created again since)"
        elif body.get("fingerprints") != expected:
            why = "the experiments of this partition changed since"
        else:
            return Checkpoint(body["offset"], body["states"], topic_id)
        log.info("join: ignoring checkpoint %s: %s", path, why)
        return None
