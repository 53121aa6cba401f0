"""Models that misbehave on purpose, importable by spec (``--isolate process`` loads them
in a child process by ``MODULE:ATTRIBUTE``)."""

from __future__ import annotations

import os
import time
from typing import Any


def hang_on_sevens(features: dict[str, Any]) -> float:
    """Hangs (for an hour) on 1% of the inputs, ``x % 100 == 7``; else ``2 x``."""
    x = _x(features)
    if int(x) % 100 == 7:
        time.sleep(3600)
    return 2.0 * x


def slow(features: dict[str, Any]) -> float:
    """A healthy model taking about 5 ms per call (waiting, as on a GPU or a server)."""
    time.sleep(0.005)
    return 2.0 * _x(features)


def slow_hang_on_sevens(features: dict[str, Any]) -> float:
    """:func:`slow`, and hangs like :func:`hang_on_sevens`."""
    time.sleep(0.005)
    return hang_on_sevens(features)


def die_on_three(features: dict[str, Any]) -> float:
    """Kills its own process on ``x == 3`` (a crash in native code, the OOM killer)."""
    if _x(features) == 3.0:
        os._exit(3)
    return 2.0 * _x(features)


def _x(features: dict[str, Any]) -> float:
    return float(features["x"] if "x" in features else features["age"])
