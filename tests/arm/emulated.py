"""The op tests on ARM under qemu user-mode emulation: the library cross-built for the architecture
(library_builds.cross_build), run by the Debian trixie Python of debian_sysroot.py, with onnxruntime 1.21.

    python tests/arm/emulated.py arm64|armhf [PYTEST ARGS...]     (default: the op and malformed-model tests)

BNN2ONNX_CASES sets the random cases per op (tests/test_ops_match_reference.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import debian_sysroot
from library_builds import ROOT, cross_build

# Debian architecture -> its cross compiler triple
ARCHITECTURES = {"arm64": "aarch64-linux-gnu", "armhf": "arm-linux-gnueabihf"}
CROSS_PACKAGES = "g++-aarch64-linux-gnu g++-arm-linux-gnueabihf"
TESTS = ["tests/test_ops_match_reference.py", "tests/test_malformed_models.py"]


def command(arch: str, pytest_args: list[str]) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that run pytest with `pytest_args` on `arch` under qemu."""
    triple = ARCHITECTURES[arch]
    if shutil.which(f"{triple}-g++") is None:
        raise RuntimeError(f"{triple}-g++ is missing: apt-get install {CROSS_PACKAGES} (./dev test installs them)")
    library = cross_build(triple).library
    python = debian_sysroot.sysroot(arch) / "usr" / "bin" / "python3.13"
    argv = [*debian_sysroot.emulator(arch), str(python),
            # Debian's protobuf and dateutil warn about Python 3.14 deprecations; nothing of ours.
            "-W", "ignore::DeprecationWarning", "-m", "pytest", "-q", "-p", "no:cacheprovider", *pytest_args]
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "BNN2ONNX_LIBRARY": str(library)}
    return argv, environment


if __name__ == "__main__":
    argv, environment = command(sys.argv[1], sys.argv[2:] or TESTS)
    sys.exit(subprocess.run(argv, env=environment, cwd=ROOT, check=False).returncode)
