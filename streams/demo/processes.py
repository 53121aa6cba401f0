"""Child processes of the demo: each in its own process group, logged to a file, stoppable.

``stop()`` sends SIGTERM to the whole group, waits, then SIGKILLs it; a child also gets
SIGTERM if the demo itself dies (Linux ``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from streams.broker.errors import tail
from streams.broker.process import die_with_parent

__all__ = ["ChildProcess", "shadow_eval_command"]


def shadow_eval_command(*args: str) -> list[str]:
    """``shadow-eval ARGS`` with this interpreter's console script (or ``-m`` fallback).

    Examples
    --------
    >>> shadow_eval_command("worker", "--help")[-2:]
    ['worker', '--help']
    """
    script = Path(sys.executable).with_name("shadow-eval")
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-c", "from streams.cli import main; main()", *args]


class ChildProcess:
    """A started subprocess whose stdout and stderr go to ``log``.

    Examples
    --------
    >>> import tempfile
    >>> child = ChildProcess("sleeper", ["sleep", "30"], Path(tempfile.mkdtemp()) / "s.log")
    >>> child.alive
    True
    >>> child.stop(timeout=5)
    -15
    """

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        log: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as handle:
            self.proc = subprocess.Popen(
                list(command),
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=None if env is None else dict(env),
                start_new_session=True,
                preexec_fn=die_with_parent(),
            )

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        return tail(self.log, lines)

    def _signal(self, signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signum)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the process group, SIGKILL it after ``timeout`` s; the exit code."""
        if self.alive:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(5.0)
        self._signal(signal.SIGKILL)  # stragglers of the group, if any
        return self.proc.poll()
