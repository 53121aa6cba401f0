"""Build hook: compile the C modules when a C compiler is there.

``python hatch_build.py [--sanitize] DIR`` compiles them in place under ``DIR`` (a copy
of the tree), with AddressSanitizer when asked: ``make check-native`` runs their tests so.

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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

try:
    from hatchling.builders.hooks.plugin.interface import BuildHookInterface
except ImportError:  # run as a script (make check-native), where hatchling is not installed
    BuildHookInterface = object

SOURCES = (Path("streams/codec/_cread.c"), Path("streams/join/_cslots.c"))


WARNINGS = ("-Wall", "-Werror")
"""Every warning is an error: the C modules are hand-written."""


def compile_extension(source: Path, target: Path, extra_flags: Sequence[str] = ()) -> None:
    """Compile and link ``source`` into the extension module ``target``, with the flags
    this Python was built with, :data:`WARNINGS` and ``extra_flags``."""
    config = sysconfig.get_config_vars()
    command = [
        *shlex.split(config["LDSHARED"]),
        *shlex.split(config.get("CFLAGS") or ""),
        *shlex.split(config.get("CCSHARED") or ""),
        "-O2",
        *WARNINGS,
        *extra_flags,
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


def main(argv: Sequence[str]) -> int:
    """Compile every C module in place under a tree (``make check-native``)."""
    sanitize = "--sanitize" in argv
    root = Path([a for a in argv if not a.startswith("--")][0])
    flags = ("-g", "-fsanitize=address", "-fno-omit-frame-pointer") if sanitize else ()
    for source in SOURCES:
        target = root / source.parent / (source.stem + sysconfig.get_config_var("EXT_SUFFIX"))
        try:
            compile_extension(root / source, target, flags)
        except subprocess.CalledProcessError as exc:
            print(f"{source}: {exc.stderr}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
