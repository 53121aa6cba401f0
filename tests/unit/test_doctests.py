"""The runnable examples in the docstrings of the pure packages pass."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import streams.actions
import streams.codec
import streams.ingest
import streams.join
import streams.oip
import streams.stats
import streams.web

MODULES = [
    m.name
    for package in (
        streams.actions,
        streams.codec,
        streams.ingest,
        streams.join,
        streams.oip,
        streams.stats,
        streams.web,
    )
    for m in pkgutil.walk_packages(package.__path__, f"{package.__name__}.")
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    res = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert res.failed == 0
