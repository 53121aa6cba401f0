"""The switch of the C modules (``streams/codec/_cread.c``, ``streams/join/_cslots.c``).

Each has a Python twin that gives the same results; ``SHADOW_EVAL_PURE_PYTHON=1`` runs the
twins even where the C modules are built.
"""

from __future__ import annotations

import os

__all__ = ["PURE_PYTHON_ENV", "python_forced"]

PURE_PYTHON_ENV = "SHADOW_EVAL_PURE_PYTHON"


def python_forced() -> bool:
    """Whether ``SHADOW_EVAL_PURE_PYTHON`` asks for the Python twins."""
    return bool(os.environ.get(PURE_PYTHON_ENV))
