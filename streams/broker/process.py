"""Process plumbing of the local broker: liveness, signals and the JVM command line."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "argfile",
    "die_with_parent",
    "is_alive",
    "java_command",
    "signal_group",
    "wait_gone",
]

HEAP_MIN = "256m"
HEAP_MAX = "512m"
_PR_SET_PDEATHSIG = 1


def java_command(
    java: str, classpath: str, main_class: str, *args: str, log4j_config: Path | None = None
) -> list[str]:
    """The ``java`` command line for a Kafka main class with a small, fast-starting heap.

    Examples
    --------
    >>> java_command("java", "/libs/*", "kafka.Kafka", "s.properties")[-3:]
    ['/libs/*', 'kafka.Kafka', 's.properties']
    """
    command = [
        java,
        f"-Xms{HEAP_MIN}",
        f"-Xmx{HEAP_MAX}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
    ]
    if log4j_config is not None:
        command.append(f"-Dlog4j2.configurationFile={log4j_config}")
    return [*command, "-cp", classpath, main_class, *args]


def argfile(args: list[str]) -> str:
    """The text of a ``java @file`` argument file holding ``args`` (one quoted per line).

    Examples
    --------
    >>> argfile(["-cp", "/libs/*", 'a "b"'])
    '"-cp"\\n"/libs/*"\\n"a \\\\"b\\\\""\\n'
    """
    quoted = ('"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"' for arg in args)
    return "".join(f"{line}\n" for line in quoted)


def _cmdline(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def is_alive(pid: int, marker: str | None = None) -> bool:
    """Whether ``pid`` runs (not a zombie) and, on Linux, has ``marker`` in its command line.

    The marker guards against a recycled pid: a stale pid file must never make us
    signal an unrelated process.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return marker is None
    if _is_zombie(pid):
        return False
    if marker is None or not Path("/proc").is_dir():
        return True
    cmdline = _cmdline(pid)
    return cmdline is not None and marker in cmdline


def signal_group(pid: int, signum: signal.Signals) -> None:
    """Send ``signum`` to the process group led by ``pid`` (the broker is its leader)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signum)


def wait_gone(alive: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll ``alive`` until it is false or ``timeout`` seconds pass; return whether it is gone."""
    deadline = time.monotonic() + timeout
    while alive():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` making Linux SIGTERM the child when its parent dies, else ``None``.

    libc is loaded here, in the parent, so the child only makes one system call
    between ``fork`` and ``exec``.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)

    return preexec
