"""The one error type of the local broker, carrying the broker log's tail."""

from __future__ import annotations

from collections import deque
from pathlib import Path

__all__ = ["BrokerError", "tail"]

TAIL_LINES = 30


def tail(path: Path, lines: int = TAIL_LINES, *, start: int = 0) -> str:
    """Return the last ``lines`` lines of a text file, or ``""`` if it cannot be read.

    Parameters
    ----------
    path
        The file to read.
    lines
        How many lines to keep from the end.
    start
        Byte offset to read from, so the tail covers one run of an appended log only.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "log"
    >>> _ = p.write_text("a\\nb\\nc\\n")
    >>> tail(p, 2)
    'b\\nc'
    """
    try:
        with path.open("rb") as handle:
            handle.seek(start)
            kept: deque[bytes] = deque(handle, maxlen=lines)
    except OSError:
        return ""
    return b"".join(kept).decode("utf-8", errors="replace").rstrip("\n")


class BrokerError(RuntimeError):
    """Provisioning, starting or stopping the local Kafka broker failed.

    The message says what went wrong; ``log_tail`` (also appended to the message)
    holds the last lines of the broker log or of the tool's output when there is one.

    Examples
    --------
    >>> str(BrokerError("port 9092 is already in use", log_tail="line 1"))
    'port 9092 is already in use\\n--- last lines of the log ---\\nline 1'
    """

    def __init__(self, message: str, *, log_tail: str = "", log_path: Path | None = None) -> None:
        self.reason = message
        self.log_tail = log_tail
        self.log_path = log_path
        text = message
        if log_tail:
            where = f" ({log_path})" if log_path is not None else ""
            text += f"\n--- last lines of the log{where} ---\n{log_tail}"
        super().__init__(text)
