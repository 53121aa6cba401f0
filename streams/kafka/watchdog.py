"""A watchdog for blocking client calls that may never return.

librdkafka's ``send_offsets_to_transaction`` can block forever, past its own timeout,
when the group coordinator goes away mid-transaction (confluentinc/librdkafka#5456,
#5511: a broker restart is enough). A blocked C call cannot be interrupted, so the
watchdog hands the stall to a callback; the join's CLI restarts the process in place,
which is safe because every bit of the join's state is in Kafka.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["Watchdog", "restart_process"]

log = logging.getLogger(__name__)


def restart_process(what: str, why: str = "is stuck") -> None:
    """Replace this process with a fresh run of the same command line."""
    log.critical("%s %s; restarting the process (state is in Kafka)", what, why)
    logging.shutdown()
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


class Watchdog:
    """Calls ``on_stall(what)`` once a guarded block has run longer than ``limit_s``.

    Examples
    --------
    >>> stalls = []
    >>> dog = Watchdog(0.05, stalls.append, tick_s=0.01)
    >>> with dog.guard("a slow call"):
    ...     time.sleep(0.2)
    >>> stalls
    ['a slow call']
    >>> dog.close()
    """

    def __init__(
        self, limit_s: float, on_stall: Callable[[str], None], tick_s: float = 1.0
    ) -> None:
        self.limit_s = limit_s
        self._on_stall = on_stall
        self._tick_s = tick_s
        self._lock = threading.Lock()
        self._armed: tuple[str, float] | None = None
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="join-watchdog", daemon=True)
        self._thread.start()

    @contextmanager
    def guard(self, what: str) -> Iterator[None]:
        with self._lock:
            self._armed = (what, time.monotonic())
        try:
            yield
        finally:
            with self._lock:
                self._armed = None

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=5)

    def _watch(self) -> None:
        while not self._closed.wait(self._tick_s):
            with self._lock:
                armed = self._armed
                if armed is None or time.monotonic() - armed[1] < self.limit_s:
                    continue
                self._armed = None  # once per stall
            self._on_stall(armed[0])
