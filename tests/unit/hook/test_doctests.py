"""The runnable examples in the hook's docstrings pass (those needing a broker are skipped)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import streams.hook

MODULES = [
    m.name
    for m in pkgutil.iter_modules(streams.hook.__path__, "streams.hook.")
    if m.name != "streams.hook.fastapi"  # needs the fastapi extra
]


@pytest.mark.parametrize("name", ["streams.hook", *MODULES])
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
