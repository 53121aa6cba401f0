"""The switch of the C modules (``streams/codec/_cread.c``, ``streams/join/_cslots.c``).

Each has a Python twin that gives the same results; ``SHADOW_EVAL_PURE_PYTHON=1`` runs the
twins even where the C modules are built.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

__all__ = ["PURE_PYTHON_ENV", "load_native", "python_forced"]

PURE_PYTHON_ENV = "SHADOW_EVAL_PURE_PYTHON"


def python_forced() -> bool:
    """Whether ``SHADOW_EVAL_PURE_PYTHON`` asks for the Python twins."""
    return bool(os.environ.get(PURE_PYTHON_ENV))


def load_native(name: str) -> Any:
    """The C module ``name`` (built when a compiler was there); ``None`` without it or when
    ``SHADOW_EVAL_PURE_PYTHON`` is set."""
    if python_forced():
        return None
    try:
        return importlib.import_module(name)
    except ImportError:
        return None
