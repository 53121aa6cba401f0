"""Candidate models of the join integration tests, run by real shadow workers.

The synthetic inputs carry each model's precomputed answer in hidden features, so every
candidate's quality is known exactly: ``worse`` is 5 accuracy points below live, ``same``
answers exactly as live, ``slow`` answers as live but 30% more slowly than live reports.
"""

from __future__ import annotations

import time
from typing import Any

LIVE_LATENCY_MS = 2.0


def worse(features: dict[str, Any]) -> str:
    return str(features["_worse"])


def same(features: dict[str, Any]) -> str:
    return str(features["_live"])


def slow(features: dict[str, Any]) -> str:
    time.sleep(LIVE_LATENCY_MS * 1.3 / 1000.0)
    return str(features["_live"])
