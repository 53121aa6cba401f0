"""Suite-wide test configuration: tests under ``tests/integration`` and ``tests/faults``
get their markers."""

from __future__ import annotations

from pathlib import Path

import pytest

INTEGRATION_DIR = Path(__file__).parent / "integration"
FAULTS_DIR = Path(__file__).parent / "faults"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under ``tests/integration`` with ``integration`` (needs a real broker)
    and under ``tests/faults`` with ``faults`` (a local three-broker cluster)."""
    for item in items:
        parents = Path(item.path).parents
        if INTEGRATION_DIR in parents:
            item.add_marker(pytest.mark.integration)
        if FAULTS_DIR in parents:
            item.add_marker(pytest.mark.faults)
