"""Build hook: compile the C modules when a C compiler is there.

``streams/codec/_cread.c`` (record readers) and ``streams/join/_cslots.c`` (join state
packing) each have a Python twin that gives the same results, so a failed compile is a
warning, not an error. An editable install (``pip install -e .``, ``make install``)
builds each module next to its source; a wheel gets them as platform-specific files.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCES = (Path("streams/codec/_cread.c"), Path("streams/join/_cslots.c"))


def compile_extension(source: Path, target: Path) -> None:
    """Compile and link ``source`` into the extension module ``target``, with the flags
    this Python was built with."""
    config = sysconfig.get_config_vars()
    command = [
        *shlex.split(config["LDSHARED"]),
        *shlex.split(config.get("CFLAGS") or ""),
        *shlex.split(config.get("CCSHARED") or ""),
        "-O2",
        f"-I{sysconfig.get_paths()['include']}",
        str(source),
        "-o",
        str(target),
    ]
    subprocess.run(command, check=True, capture_output=True, text=True)


class CustomBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        built = Path(tempfile.mkdtemp(prefix="shadow-eval-build-"))
        for source in SOURCES:
            name = source.stem + sysconfig.get_config_var("EXT_SUFFIX")
            target = root / source.parent / name if version == "editable" else built / name
            try:
                compile_extension(root / source, target)
            except (OSError, subprocess.CalledProcessError) as exc:
                detail = getattr(exc, "stderr", "") or exc
                print(
                    f"shadow-eval: {source} did not compile; its Python twin will run "
                    f"(same results, slower): {detail}",
                    file=sys.stderr,
                )
                continue
            if version != "editable":
                build_data["force_include"][str(target)] = str(source.parent / name)
                build_data["pure_python"] = False
                build_data["infer_tag"] = True
