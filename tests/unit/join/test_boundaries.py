"""The pure join core imports no Kafka client, faust or fastavro (STYLE: pure core, thin edges)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PURE = [
    "experiments",
    "keys",
    "layout",
    "slot_state",
    "slot_events",
    "slots",
    "observe",
    "judge",
]
FORBIDDEN = ("confluent_kafka", "faust", "aiokafka", "fastavro", "streams.codec")
JOIN_DIR = Path(__file__).resolve().parents[3] / "streams" / "join"


@pytest.mark.parametrize("module", PURE)
def test_pure_join_modules_import_no_transport(module: str) -> None:
    tree = ast.parse((JOIN_DIR / f"{module}.py").read_text())
    imported = [
        name
        for node in ast.walk(tree)
        for name in (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom)
            else []
        )
    ]
    assert not [n for n in imported if n.startswith(FORBIDDEN)], imported
