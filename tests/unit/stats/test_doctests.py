"""The runnable examples in the docstrings of ``streams.stats`` pass."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import streams.stats

MODULES = [m.name for m in pkgutil.walk_packages(streams.stats.__path__, "streams.stats.")]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    res = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert res.failed == 0
