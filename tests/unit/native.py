"""Whether this machine should have built the C modules (see hatch_build.py)."""

from __future__ import annotations

import shutil
import sysconfig
from pathlib import Path

import pytest

from streams.native import PURE_PYTHON_ENV, python_forced


def skip_unless_buildable() -> None:
    """Skip the calling test where the C modules cannot (or must not) be in use: no C
    compiler, no Python headers, or ``SHADOW_EVAL_PURE_PYTHON`` set."""
    if python_forced():
        pytest.skip(f"{PURE_PYTHON_ENV} is set: the Python code runs")
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    headers = Path(sysconfig.get_paths()["include"], "Python.h")
    if shutil.which(compiler) is None or not headers.exists():
        pytest.skip(f"no C compiler ({compiler}) or no {headers}: the Python code runs")
