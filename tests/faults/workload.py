"""The fault scenarios' workload: the hook serving requests at a steady rate with their
labels, one shadow worker process per candidate, and two join processes.

The candidates (``tests.integration.candidates``) answer from hidden features, so their
quality is known: ``worse`` is 20 accuracy points below live (its verdict must be
``reject`` in every run), ``same`` answers as live. Nothing here may expire: the TTLs are
longer than any scenario, so the final counts are exact.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry

from streams.hook import ShadowPublisher
from streams.settings import Settings
from streams.synthetic import CandidateSpec, classification_requests
from streams.topics import create_topics
from tests.integration import candidates
from tests.integration.join_helpers import JoinProcess

REPO = Path(__file__).resolve().parents[2]
OWNS = re.compile(r"stage 1 owns partitions \[\d")
ASSIGNMENT = re.compile(r"(assigned|revoked|lost) \S+?\.inputs\[([\d, ]*)\]")
EXPERIMENTS = ("worse", "same")
CANDIDATES = {"worse": "v2", "same": "v3"}
WORKER_SESSION_MS = 6000
"""The workers' group session timeout (a frozen worker's partitions move after it)."""
EXPERIMENTS_TOML = """
[join]
pair_ttl_s = 3600
label_ttl_s = 7200
expire_every_s = 1
snapshot_every_s = 0.5
""" + "".join(
    f"""
[[experiments]]
name = "{name}"
model = "churn"
live_version = "v1"
candidate = "{version}"
task = "binary"
primary_metric = "correct"
"""
    for name, version in CANDIDATES.items()
)


class Service:
    """A ``shadow-eval`` subprocess in its own process group, logging to ``log``."""

    def __init__(
        self, name: str, command: list[str], log: Path, env: dict[str, str] | None = None
    ) -> None:
        self.name, self.log = name, log
        self._file = log.open("ab")
        env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", *command],
            cwd=REPO, env=env, stdout=self._file, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def signal(self, signum: signal.Signals) -> None:
        os.killpg(self.process.pid, signum)

    def alive(self) -> bool:
        return self.process.poll() is None

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int | None:
        if self.alive():
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.process.wait(10)
        self._file.close()
        return self.process.returncode


def inputs_owned(service: Service) -> set[int]:
    """The inputs partitions a worker owns, from its log (incremental assignments)."""
    owned: set[int] = set()
    for change, numbers in ASSIGNMENT.findall(service.text()):
        partitions = {int(n) for n in numbers.split(",") if n.strip()}
        owned = owned | partitions if change == "assigned" else owned - partitions
    return owned


def worker(
    settings: Settings, experiment: str, log: Path, env: dict[str, str] | None = None
) -> Service:
    """A ``shadow-eval worker`` running the candidate of ``experiment``."""
    return Service(f"worker-{experiment}", [
        "worker", "--model", f"tests.integration.candidates:{experiment}",
        "--version", CANDIDATES[experiment], "--name", "churn", "--only-model", "churn",
        "--bootstrap", settings.kafka_bootstrap, "--topic-prefix", settings.topic_prefix,
        "--session-timeout-ms", str(WORKER_SESSION_MS), "--batch-ms", "20", "--status-every", "5",
    ], log, env)  # fmt: skip


def join(settings: Settings, directory: Path, *extra: str, join_keys: str = "") -> JoinProcess:
    """A ``shadow-eval join`` process (both stages) with its own data directory;
    ``join_keys``: more lines for the experiments file's ``[join]`` table."""
    directory.mkdir(parents=True, exist_ok=True)
    experiments = directory / "experiments.toml"
    experiments.write_text(EXPERIMENTS_TOML.replace("[join]\n", f"[join]\n{join_keys}", 1))
    return JoinProcess(settings, experiments, directory / "join.log", "--batch-size", "50", *extra)


def transactional_id(process: JoinProcess, timeout: float = 60) -> str:
    """The stage-1 transactional.id a join process logged first (at its start)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(r"transactional\.id (\S+)", process.log.read_text())
        if found:
            return found.group(1)
        time.sleep(0.2)
    raise AssertionError(f"no transactional.id in {process.log}:\n{process.log.read_text()}")


@dataclass
class Traffic:
    """Requests served through the hook at ``rate`` per second, each labelled at once."""

    settings: Settings
    total: int
    rate: float
    seed: int = 19
    sent: int = 0
    labelled: list[str] = field(default_factory=list)
    served: list[str] = field(default_factory=list)
    dropped: int = 0
    failed: int = 0
    done: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        requests = classification_requests(
            self.total, CandidateSpec("v1", 0.9), [CandidateSpec("v2", 0.7)], seed=self.seed
        )
        start = time.monotonic()
        with ShadowPublisher(
            self.settings, model="churn", version="v1", export_metrics=False,
            close_at_exit=False, registry=CollectorRegistry(),
        ) as hook:  # fmt: skip
            for index, request in enumerate(requests):
                delay = start + index / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                live, request_id = request.live, request.live.request_id
                hidden = {"_live": str(live.value), "_worse": str(request.candidates[0].value)}
                features = {**request.input.numeric, **request.input.categorical, **hidden}
                before = hook.counters.dropped
                hook.publish(
                    features, live.value, request_id=request_id,
                    probabilities=live.probabilities,
                    latency_ms=candidates.LIVE_LATENCY_MS, segments=live.segments,
                )  # fmt: skip
                if hook.counters.dropped == before:
                    self.served.append(request_id)
                    hook.label(request_id, str(request.label.value))
                    if hook.counters.dropped == before:
                        self.labelled.append(request_id)
                self.sent = index + 1
            hook.flush(180)
            counters = hook.counters
        self.dropped, self.failed = counters.dropped, counters.failed
        self.done.set()

    def wait_sent(self, count: int, timeout: float = 120) -> None:
        """Until ``count`` requests were handed to the hook."""
        deadline = time.monotonic() + timeout
        while self.sent < count:
            assert time.monotonic() < deadline, f"the hook sent {self.sent} of {count}"
            time.sleep(0.05)


class Workload:
    """Topics, two candidate workers, two join processes and the traffic of one scenario."""

    def __init__(
        self,
        settings: Settings,
        directory: Path,
        total: int = 1500,
        rate: float = 60.0,
        worker_env: dict[str, str] | None = None,
        join_keys: str = "",
        joins: int = 2,
        join_args: tuple[str, ...] = (),
    ) -> None:
        create_topics(settings)
        self.settings, self.directory = settings, directory
        self.workers = [worker(settings, name, directory / f"worker-{name}.log", worker_env)
                        for name in EXPERIMENTS]  # fmt: skip
        self.joins = [join(settings, directory / f"join{i}", *join_args, join_keys=join_keys)
                      for i in range(joins)]  # fmt: skip
        self.traffic = Traffic(settings, total, rate)
        self._thread = threading.Thread(target=self.traffic.run, daemon=True)

    def add_worker(self, experiment: str) -> Service:
        """Another worker process of ``experiment``'s candidate (its group shares the
        partitions with the ones running)."""
        name = f"worker-{experiment}-{len(self.workers)}"
        added = worker(self.settings, experiment, self.directory / f"{name}.log")
        added.name = name
        self.workers.append(added)
        return added

    def add_join(self, *extra: str) -> JoinProcess:
        """Another join process, with its own data directory."""
        added = join(self.settings, self.directory / f"join{len(self.joins)}", *extra)
        self.joins.append(added)
        return added

    def start_traffic(self, timeout: float = 120) -> None:
        """Once every worker and join process owns partitions, start the hook."""
        ready = {
            **{w.name: (w.log, re.compile(r"assigned .*\[\d")) for w in self.workers},
            **{f"join{i}": (j.log, OWNS) for i, j in enumerate(self.joins)},
        }
        deadline = time.monotonic() + timeout
        while ready:
            assert time.monotonic() < deadline, f"not running: {sorted(ready)}\n{self.logs()}"
            for name, (log, pattern) in list(ready.items()):
                if pattern.search(log.read_text(errors="replace")):
                    del ready[name]
            time.sleep(0.2)
        self._thread.start()

    def wait_traffic(self, timeout: float = 300) -> None:
        self._thread.join(timeout)
        assert self.traffic.done.is_set(), "the hook did not finish sending"

    def alive(self) -> dict[str, bool]:
        """Which processes still run (a fault must not have killed any)."""
        named = {w.name: w.alive() for w in self.workers}
        named.update({f"join{i}": j.process.poll() is None for i, j in enumerate(self.joins)})
        return named

    def logs(self) -> str:
        texts = [f"== {w.name}\n{w.text()[-2500:]}" for w in self.workers]
        texts += [f"== join{i}\n{j.log.read_text()[-2500:]}" for i, j in enumerate(self.joins)]
        return "\n".join(texts)

    def stop(self) -> None:
        for service in self.workers:
            service.stop()
        for process in self.joins:
            process.stop()
