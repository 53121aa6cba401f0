"""Who may import whom (docs/ARCHITECTURE.md), checked two ways.

Statically: every ``import`` in a module's source (inside functions too, so a lazy import
cannot hide), followed through ``streams`` modules to everything they may load. At run
time: a fresh interpreter imports the module and ``sys.modules`` shows what came with it.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import pytest

import streams

SRC = Path(streams.__file__).resolve().parent
REPO = SRC.parent

# The pure core: statistics, the join's state machine and rules. numpy and scipy are all
# the third-party code it may use; Kafka clients, Avro, settings and metrics stay outside.
PURE_CORE = [
    *sorted(
        ".".join(("streams", *p.relative_to(SRC).with_suffix("").parts))
        for p in (SRC / "stats").glob("*.py")
        if p.name != "__init__.py"
    ),
    "streams.stats",
    "streams.join.slots",
    "streams.join.experiments",
    "streams.join.observe",
    "streams.join.validity",
    "streams.join.judge",
    "streams.join.state_codec",
]
PURE_CORE_MAY_USE = {"numpy", "scipy"}
TRANSPORT = ["confluent_kafka", "aiokafka", "kafka", "faust", "mode", "fastavro"]
ADAPTERS = ["streams.codec", "streams.kafka", "streams.settings", "streams.hook"]

# What a serving app gets with ``import streams.hook``: no statistics, no CLI, no demo.
HOOK_MUST_NOT_LOAD = [
    "scipy",
    "click",
    "rich",
    "aiokafka",
    "streams.demo",
    "streams.cli",
    "streams.stats",
    "streams.join",
    "streams.worker",
]


def _module_file(name: str) -> Path | None:
    base = REPO.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


@cache
def imports_of(name: str) -> frozenset[str]:
    """Every module ``name``'s source imports, anywhere in it, relative ones resolved."""
    path = _module_file(name)
    if path is None:
        return frozenset()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            # ``from streams.x import y`` loads streams.x.y when y is a module.
            found.update(
                f"{base}.{alias.name}"
                for alias in node.names
                if _module_file(f"{base}.{alias.name}")
            )
    return frozenset(found)


def reachable(roots: Iterable[str]) -> dict[str, str]:
    """Every module ``roots`` may load (``streams`` ones followed), each with who imports it."""
    via: dict[str, str] = {}
    todo = [(root, "(root)") for root in roots]
    while todo:
        name, importer = todo.pop()
        if name in via:
            continue
        via[name] = importer
        if not name.startswith("streams"):
            continue
        parts = name.split(".")
        todo += [(".".join(parts[:i]), name) for i in range(1, len(parts))]  # parents run too
        todo += [
            (n, name) for n in imports_of(name) if not n.startswith("streams") or _module_file(n)
        ]
    return via


def _matches(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _offenders(via: dict[str, str], prefixes: Iterable[str]) -> dict[str, str]:
    return {name: importer for name, importer in via.items() if _matches(name, prefixes)}


def _loaded_by(modules: list[str]) -> list[str]:
    """``sys.modules`` after a fresh interpreter imports ``modules`` (this checkout's)."""
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    )
    code = "import importlib, json, sys\n"
    code += "".join(f"importlib.import_module({m!r})\n" for m in modules)
    code += "print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    loaded: list[str] = json.loads(out.stdout)
    return loaded


# -- the hook -----------------------------------------------------------------------------
def test_hook_source_reaches_no_statistics_cli_or_demo() -> None:
    assert not _offenders(reachable(["streams.hook"]), HOOK_MUST_NOT_LOAD)


def test_importing_the_hook_loads_no_statistics_cli_or_demo() -> None:
    loaded = _loaded_by(["streams.hook"])
    assert "streams.hook.publisher" in loaded  # the import did happen
    assert [m for m in loaded if _matches(m, HOOK_MUST_NOT_LOAD)] == []


def test_hook_modules_import_each_other_without_cycles() -> None:
    hook = {
        f"streams.hook.{p.stem}" for p in (SRC / "hook").glob("*.py") if p.name != "__init__.py"
    }
    graph = {m: {n for n in imports_of(m) if n in hook} for m in hook}
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import cycle: {' -> '.join((*path, module))}"
        if module not in done:
            for nxt in graph[module]:
                visit(nxt, (*path, module))
            done.add(module)

    for module in sorted(hook):
        visit(module, ())


# -- the pure core ------------------------------------------------------------------------
def test_pure_core_source_reaches_no_transport_or_adapter() -> None:
    via = reachable(PURE_CORE)
    assert not _offenders(via, TRANSPORT + ADAPTERS)
    third_party = {
        name.split(".")[0]
        for name in via
        if not name.startswith("streams") and name.split(".")[0] not in sys.stdlib_module_names
    }
    assert third_party <= PURE_CORE_MAY_USE, third_party - PURE_CORE_MAY_USE
    ours = {name for name in via if _matches(name, ["streams"]) and name != "streams"}
    # avro_bytes (the Avro primitives) and schema_files (the .avsc text) are leaves the
    # join's byte layer stands on: pure Python, no fastavro, no transport.
    allowed = [
        "streams.stats",
        "streams.join",
        "streams.records",
        "streams.native",
        "streams.avro_bytes",
        "streams.schema_files",
        "streams.callpool",  # threads running user functions under a deadline (stdlib)
    ]
    assert {name for name in ours if not _matches(name, allowed)} == set()


def test_importing_the_pure_core_loads_no_transport_or_adapter() -> None:
    loaded = _loaded_by(PURE_CORE)
    assert "streams.join.slots" in loaded
    assert [m for m in loaded if _matches(m, TRANSPORT + ADAPTERS)] == []


@pytest.mark.parametrize("module", PURE_CORE)
def test_pure_core_module_exists(module: str) -> None:
    # A renamed or moved core module must be renamed here too, not silently left unchecked.
    assert _module_file(module) is not None, module


# -- layers -------------------------------------------------------------------------------
BELOW_THE_TOP = ["hook", "worker", "join", "kafka", "codec", "stats"]


def test_nothing_below_the_top_reaches_the_cli_demo_click_or_rich() -> None:
    roots = [
        _module_name(path) for package in BELOW_THE_TOP for path in (SRC / package).rglob("*.py")
    ]
    assert "streams.join.engine" in roots
    offenders = _offenders(reachable(roots), ["streams.cli", "streams.demo", "click", "rich"])
    assert offenders == {}


def test_the_join_does_not_import_its_web_page_and_the_page_loads_no_matplotlib() -> None:
    # streams.web (layer 4) renders the join's memory; the CLI starts it. Serving it costs
    # the join process no plotting library: the report's PNGs import matplotlib lazily.
    roots = [
        _module_name(path) for package in BELOW_THE_TOP for path in (SRC / package).rglob("*.py")
    ]
    assert _offenders(reachable(roots), ["streams.web"]) == {}
    loaded = _loaded_by(["streams.web", "streams.join.engine"])
    assert [m for m in loaded if _matches(m, ["matplotlib", "streams.cli", "streams.demo"])] == []


# -- leaves -------------------------------------------------------------------------------
LEAVES = [
    "streams.records",
    "streams.settings",
    "streams.native",
    "streams.partitioning",
    "streams.avro_bytes",
    "streams.schema_files",
    "streams.process_cost",
    "streams.callpool",
]


@pytest.mark.parametrize("module", LEAVES)
def test_leaves_import_nothing_from_streams(module: str) -> None:
    assert _module_file(module) is not None, module
    assert sorted(n for n in imports_of(module) if _matches(n, ["streams"])) == []


# -- dependencies -------------------------------------------------------------------------
def test_nothing_in_streams_imports_aiokafka() -> None:
    # aiokafka is a dev dependency only (bench/join.py); murmur2 is streams.partitioning.
    users = [
        str(path.relative_to(REPO))
        for path in SRC.rglob("*.py")
        if any(_matches(n, ["aiokafka"]) for n in imports_of(_module_name(path)))
    ]
    assert users == []


# Integrations with other platforms come with extras; the packages that run without them
# (the hook, the worker, the join) must not reach them, so a slim install keeps working.
EXTRAS_ONLY = {
    "streams.oip": ["httpx"],
    "streams.ingest": ["cloudevents"],
    "streams.actions": ["httpx"],
}


def test_the_worker_hook_and_join_run_without_the_integration_extras() -> None:
    roots = [
        _module_name(path)
        for package in ["hook", "worker", "join"]
        for path in (SRC / package).rglob("*.py")
    ]
    via = reachable(roots)
    extras = [name for names in EXTRAS_ONLY.values() for name in names]
    assert _offenders(via, [*EXTRAS_ONLY, *extras]) == {}
    assert "streams.worker.model" in via


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
