"""Helpers shared by the benchmarks: a real broker for the run, and small statistics."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from streams.broker import LocalBroker
from streams.settings import Settings, load_settings

__all__ = ["broker_settings", "rss_bytes"]


@contextmanager
def broker_settings() -> Iterator[tuple[Settings, str]]:
    """The broker named by ``SHADOW_KAFKA_BOOTSTRAP``, else a local one for this run only."""
    settings = load_settings()
    if "kafka_bootstrap" in settings.model_fields_set:
        yield settings, "external"
        return
    with tempfile.TemporaryDirectory(prefix="bench-kafka-") as data_dir:
        broker = LocalBroker(settings, Path(data_dir), die_with_parent=True)
        bootstrap = broker.start(timeout=120)
        try:
            yield load_settings(kafka_bootstrap=bootstrap), "local"
        finally:
            broker.stop()


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")
