"""Nothing in ``streams/`` builds a Kafka client but :mod:`streams.kafka.clients`."""

from __future__ import annotations

import ast
from pathlib import Path

import streams

CLIENT_CLASSES = {
    "Producer",
    "Consumer",
    "AdminClient",
    "SerializingProducer",
    "DeserializingConsumer",
}
ROOT = Path(streams.__file__).parent
ALLOWED = {ROOT / "kafka" / "clients.py"}


def _client_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("confluent_kafka"):
            found += [f"imports {a.name}" for a in node.names if a.name in CLIENT_CLASSES]
        elif (
            isinstance(node, ast.Attribute)
            and node.attr in CLIENT_CLASSES
            and isinstance(node.value, ast.Name)
            and node.value.id == "confluent_kafka"
        ):
            found.append(f"uses confluent_kafka.{node.attr}")
    return found


def test_only_the_client_factory_constructs_kafka_clients() -> None:
    offenders = {
        str(path.relative_to(ROOT)): uses
        for path in sorted(ROOT.rglob("*.py"))
        if path not in ALLOWED and (uses := _client_uses(path))
    }
    assert offenders == {}


def test_the_kafka_layer_pulls_in_nothing_heavy() -> None:
    import subprocess
    import sys

    code = (
        "import sys, streams.kafka; "
        "print(sorted(m for m in ('scipy', 'click', 'rich', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
