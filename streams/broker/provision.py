"""Resolve a runnable Apache Kafka 4.x broker from Maven Central into the cache, once.

The jars land in ``<cache_dir>/kafka/libs``; a marker file ``<cache_dir>/kafka/VERSION``
records the resolved Kafka version and makes later calls a cheap lookup.
"""

from __future__ import annotations

import fcntl
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from streams.broker.errors import TAIL_LINES, BrokerError

__all__ = ["KafkaRuntime", "deploy_file", "find_runtime", "locked", "provision_kafka", "run_maven"]

Progress = Callable[[str], None]
_KAFKA_JAR = re.compile(r"^kafka_2\.13-(?P<version>\d+\.\d+\.\d+[\w.-]*)\.jar$")
_PACKAGE_ROOT = Path(__file__).resolve().parents[1]
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True, slots=True)
class KafkaRuntime:
    """A provisioned Kafka: its version and the directory holding every runtime jar.

    Examples
    --------
    >>> KafkaRuntime("4.4.0", Path("/c/kafka/libs")).classpath
    '/c/kafka/libs/*'
    """

    version: str
    libs: Path

    @property
    def classpath(self) -> str:
        """Java class path covering every jar in ``libs``."""
        return str(self.libs / "*")


def deploy_file(name: str) -> Path:
    """Locate a file of ``deploy/`` in a wheel (``streams/_deploy``) or in the source tree.

    Raises
    ------
    BrokerError
        If neither location has the file.
    """
    candidates = (_PACKAGE_ROOT / "_deploy" / name, _PACKAGE_ROOT.parent / "deploy" / name)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise BrokerError(f"cannot find {name} of shadow-eval (looked in {looked})")


def _kafka_dir(cache_dir: Path) -> Path:
    return Path(cache_dir).expanduser() / "kafka"


def find_runtime(cache_dir: Path) -> KafkaRuntime | None:
    """The runtime already provisioned in ``cache_dir``, or ``None``."""
    kafka_dir = _kafka_dir(cache_dir)
    marker, libs = kafka_dir / "VERSION", kafka_dir / "libs"
    if not marker.is_file():
        return None
    version = marker.read_text().strip()
    if not version or not (libs / f"kafka_2.13-{version}.jar").is_file():
        return None
    return KafkaRuntime(version, libs)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Serialize provisioning between processes sharing one cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _kafka_version(libs: Path) -> str:
    for jar in sorted(libs.iterdir()):
        match = _KAFKA_JAR.match(jar.name)
        if match:
            return match["version"]
    raise BrokerError(f"Maven finished but no kafka_2.13-*.jar is in {libs}")


def run_maven(
    mvn: str, pom: Path, output: Path, *, goals: list[str] | None = None, what: str = "Kafka"
) -> None:
    """Run Maven on ``pom`` (by default: copy its runtime dependencies into ``output``)."""
    executable = shutil.which(mvn)
    if executable is None:
        raise BrokerError(
            f"Maven ({mvn!r}) is not on PATH; it is needed once to fetch the {what} jars "
            "from Maven Central (install Maven 3.x, e.g. `apt-get install maven`)"
        )
    goals = goals or [
        "dependency:copy-dependencies", f"-DoutputDirectory={output}", "-DincludeScope=runtime",
    ]  # fmt: skip
    command = [executable, "-q", "-B", "-Dstyle.color=never", "-f", str(pom), *goals]
    try:
        done = subprocess.run(
            command, cwd=output.parent, capture_output=True, text=True, check=False, timeout=900
        )
    except subprocess.TimeoutExpired as exc:
        raise BrokerError(f"Maven did not finish resolving {what} within 15 minutes") from exc
    if done.returncode != 0:
        text = _ANSI.sub("", done.stdout + done.stderr)
        lines = [line for line in text.rstrip().splitlines() if line.strip()][-TAIL_LINES:]
        raise BrokerError(
            f"Maven failed (exit code {done.returncode}) resolving {what} with {pom}",
            log_tail="\n".join(lines),
        )


def provision_kafka(
    cache_dir: Path,
    *,
    pom: Path | None = None,
    mvn: str = "mvn",
    force: bool = False,
    progress: Progress | None = None,
) -> KafkaRuntime:
    """Return the cached Kafka runtime, resolving it with Maven first if needed.

    Parameters
    ----------
    cache_dir
        ``Settings.cache_dir``; the jars go to ``<cache_dir>/kafka/libs``.
    pom
        The pom to resolve; ``deploy/kafka-pom.xml`` of shadow-eval by default.
    mvn
        Maven executable (name on PATH or path).
    force
        Resolve again even if a runtime is cached.
    progress
        Called with a one-line message before the slow step.

    Raises
    ------
    BrokerError
        If Maven is missing or fails (the message shows its output's tail).
    """
    kafka_dir = _kafka_dir(cache_dir)
    if not force and (runtime := find_runtime(cache_dir)) is not None:
        return runtime
    with locked(kafka_dir / ".lock"):
        if not force and (runtime := find_runtime(cache_dir)) is not None:
            return runtime  # another process provisioned it while we waited
        pom = pom if pom is not None else deploy_file("kafka-pom.xml")
        if progress is not None:
            progress("resolving Apache Kafka 4.x with Maven (first run only)...")
        staging = Path(tempfile.mkdtemp(prefix="libs.", dir=kafka_dir))
        try:
            run_maven(mvn, pom, staging)
            version = _kafka_version(staging)
            libs = kafka_dir / "libs"
            shutil.rmtree(libs, ignore_errors=True)
            staging.rename(libs)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        (kafka_dir / "VERSION").write_text(version + "\n")
    return KafkaRuntime(version, libs)
