"""Builds of the custom-op library that some tests need beside the installed one: a Release build whose object
files can be inspected, an AddressSanitizer + UBSan build, cross builds for ARM, and the C++ example program.
Each is configured and built once into build/<name> of the checkout (cmake and ninja from the environment's bin
directory, where requirements/ci.txt puts them) and reused while its sources are unchanged (ninja decides)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SANITIZER_FLAGS = "-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"


@dataclass(frozen=True)
class LibraryBuild:
    directory: Path

    @property
    def library(self) -> Path:
        return self.directory / "libbnn2onnx_ops.so"

    def object_flags(self) -> dict[Path, list[str]]:
        """Each object file of the library and the compiler arguments it was built with."""
        commands = json.loads((self.directory / "compile_commands.json").read_text())
        return {Path(c["directory"]) / c["output"]: c["command"].split() for c in commands}


def _tool(name: str) -> str:
    local = Path(sys.executable).parent / name
    return str(local) if local.is_file() else name


def build(name: str, cmake_defines: dict[str, str] | None = None, source: Path = ROOT / "custom_ops") -> LibraryBuild:
    directory = ROOT / "build" / name
    defines = {"CMAKE_BUILD_TYPE": "Release", "CMAKE_EXPORT_COMPILE_COMMANDS": "ON", **(cmake_defines or {})}
    configure = [_tool("cmake"), "-S", str(source), "-B", str(directory), "-G", "Ninja",
                 f"-DCMAKE_MAKE_PROGRAM={_tool('ninja')}", *(f"-D{k}={v}" for k, v in defines.items())]
    subprocess.run(configure, check=True, capture_output=True, text=True)
    subprocess.run([_tool("cmake"), "--build", str(directory)], check=True, capture_output=True, text=True)
    return LibraryBuild(directory)


def release_build() -> LibraryBuild:
    return build("release")


def toolchain(triple: str) -> dict[str, str]:
    """CMake settings for Debian's cross compiler for `triple` (aarch64-linux-gnu, arm-linux-gnueabihf)."""
    return {"CMAKE_TOOLCHAIN_FILE": str(ROOT / "custom_ops" / "cmake" / "toolchains" / f"{triple}.cmake")}


def cross_build(triple: str) -> LibraryBuild:
    """The library for another architecture."""
    return build(f"arm/lib-{triple}", toolchain(triple))


def example_program(triple: str | None = None) -> Path:
    """examples/cpp's run_model, for this machine or (cross-built) for `triple`."""
    name = f"arm/run_model-{triple}" if triple else "run_model"
    directory = build(name, toolchain(triple) if triple else None, ROOT / "examples" / "cpp").directory
    return directory / "run_model"


def sanitizer_build() -> LibraryBuild:
    return build("sanitize", {"CMAKE_BUILD_TYPE": "RelWithDebInfo", "CMAKE_CXX_FLAGS": SANITIZER_FLAGS,
                              "CMAKE_SHARED_LINKER_FLAGS": "-fsanitize=address,undefined"})


def sanitizer_environment(build: LibraryBuild) -> dict[str, str]:
    """The environment in which a Python process loads the sanitizer build: the sanitizers' runtimes preloaded
    (python itself is not instrumented), leaks not reported (CPython's own allocations would be), an allocation
    above 3 GiB failing (as a failed allocation, which the ops must report cleanly) rather than exhausting the
    machine, and the first report ending the process with a recognisable exit code."""
    runtimes = [subprocess.run(["gcc", f"-print-file-name={lib}"], capture_output=True, text=True,
                               check=True).stdout.strip() for lib in ("libasan.so", "libubsan.so")]
    return {**os.environ, "BNN2ONNX_LIBRARY": str(build.library), "LD_PRELOAD": ":".join(runtimes),
            "ASAN_OPTIONS": "detect_leaks=0:exitcode=86:allocator_may_return_null=1:max_allocation_size_mb=3072",
            "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:exitcode=86"}


if __name__ == "__main__":
    # `env $(python tests/library_builds.py) COMMAND`: COMMAND with the sanitizer build loaded (./dev sanitize).
    environment = sanitizer_environment(sanitizer_build())
    print(" ".join(f"{k}={environment[k]}" for k in ("BNN2ONNX_LIBRARY", "LD_PRELOAD", "ASAN_OPTIONS",
                                                     "UBSAN_OPTIONS")))
