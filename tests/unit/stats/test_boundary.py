"""The statistics core is transport-free: no Kafka, faust or Avro import anywhere in it."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import sys
from pathlib import Path

import streams.stats

FORBIDDEN = {"kafka", "faust", "fastavro", "confluent_kafka", "aiokafka", "mode"}
ROOT = Path(streams.stats.__file__).parent


def test_no_transport_imports_in_source() -> None:
    for path in ROOT.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"


def test_importing_every_module_loads_no_transport() -> None:
    before = set(sys.modules)
    for mod in pkgutil.walk_packages(streams.stats.__path__, "streams.stats."):
        importlib.import_module(mod.name)
    loaded = {m.split(".")[0] for m in set(sys.modules) - before}
    assert not loaded & FORBIDDEN


def test_public_api_is_exported() -> None:
    for name in streams.stats.__all__:
        assert hasattr(streams.stats, name), name
