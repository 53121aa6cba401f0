"""Logging that cannot flood: at most one line per key per interval."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

__all__ = ["LibrdkafkaLog", "RateLimitedLog"]


class RateLimitedLog:
    """Logs a warning per ``key`` at most once every ``interval`` seconds.

    The next line after a quiet period says how many were suppressed.

    Examples
    --------
    >>> log = RateLimitedLog(logging.getLogger("demo"), interval=60.0)
    >>> log.warning("encode", "cannot encode %s", "x")
    True
    >>> log.warning("encode", "cannot encode %s", "y")
    False
    """

    def __init__(self, logger: logging.Logger, interval: float = 60.0) -> None:
        self.logger = logger
        self.interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def warning(self, key: str, message: str, *args: Any) -> bool:
        """Log unless ``key`` was logged less than ``interval`` seconds ago; whether it did."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False
            self._last[key] = now
            suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            message += f" ({suppressed} similar messages suppressed)"
        self.logger.warning(message, *args)
        return True


class LibrdkafkaLog:
    """A ``logger`` for librdkafka's ``logger`` setting that cannot flood the app's logs.

    librdkafka repeats a line such as "Connect ... failed: Connection refused" on every
    reconnect attempt during an outage; each facility logs at most once per interval.
    """

    def __init__(self, limited: RateLimitedLog) -> None:
        self._limited = limited

    def log(self, level: int, message: str, *args: Any) -> None:
        """Called by confluent-kafka as ``log(level, "%s [%s] %s", facility, name, text)``."""
        facility = str(args[0]) if args else message
        if level >= logging.WARNING:
            self._limited.warning(f"librdkafka:{facility}", message, *args)
        else:
            self._limited.logger.log(level, message, *args)
