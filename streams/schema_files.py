"""Where the ``.avsc`` files are, and their text as written (no fastavro needed).

The codec parses them with fastavro (:mod:`streams.codec.catalogue`); the join's pure core
reads the layouts it relies on from them (:mod:`streams.join.layout`).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["find_schema_dir", "latest_schemas"]


def find_schema_dir() -> Path:
    """``schemas/`` of a source checkout, else the copy packed into an installed wheel."""
    package_dir = Path(__file__).resolve().parent
    for candidate in (package_dir.parent / "schemas", package_dir / "_schemas"):
        if (candidate / "catalogue.json").is_file():
            return candidate
    raise FileNotFoundError(
        f"no schemas/catalogue.json beside {package_dir}; is shadow-eval installed completely?"
    )


@cache
def latest_schemas(schema_dir: Path | None = None) -> dict[str, dict[str, Any]]:
    """Full name -> the newest version of that schema, as written in its file.

    Examples
    --------
    >>> latest_schemas()["dev.shadoweval.JoinSlot"]["fields"][0]["name"]
    'model'
    """
    directory = schema_dir or find_schema_dir()
    listing = json.loads((directory / "catalogue.json").read_text())
    newest: dict[str, tuple[int, dict[str, Any]]] = {}
    for item in listing["schemas"]:
        if item["name"] not in newest or item["version"] > newest[item["name"]][0]:
            raw = json.loads((directory / item["file"]).read_text())
            newest[item["name"]] = (item["version"], raw)
    return {name: raw for name, (_, raw) in newest.items()}
