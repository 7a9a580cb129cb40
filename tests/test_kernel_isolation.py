"""Code built for one instruction set never reaches a CPU through another's kernel.

Each x86 kernel file is compiled for its own ISA (-mavx2, -mavx512f ...). An inline function or template with
external linkage compiled in two of them (or in one of them and a baseline file) is one weak symbol in the
library, and the linker keeps whichever copy it meets first: the portable kernel could then run AVX code on a
CPU without AVX, depending only on the order of the files in CMakeLists.txt. So no externally visible symbol may
be defined by two objects built with different instruction-set flags; what the kernel files share lives in an
unnamed namespace (gemm_store.h)."""

from __future__ import annotations

import subprocess
from collections import defaultdict
from pathlib import Path

import pytest
from library_builds import release_build


def instruction_set_flags(arguments: list[str]) -> frozenset[str]:
    return frozenset(a for a in arguments if a.startswith("-m") and not a.startswith("-mtune"))


def defined_external_symbols(obj: Path) -> set[str]:
    listing = subprocess.run(["nm", "--defined-only", "--extern-only", str(obj)], capture_output=True, text=True,
                             check=True).stdout
    return {line.split()[-1] for line in listing.splitlines() if line.strip()}


def test_no_symbol_is_shared_by_objects_built_for_different_instruction_sets() -> None:
    objects = release_build().object_flags()
    flag_sets = {instruction_set_flags(arguments) for arguments in objects.values()}
    if len(flag_sets) == 1:
        pytest.skip("every object is built for the same instruction set here (no x86 kernel files)")
    definitions: dict[str, dict[frozenset[str], list[str]]] = defaultdict(lambda: defaultdict(list))
    for obj, arguments in objects.items():
        for symbol in defined_external_symbols(obj):
            definitions[symbol][instruction_set_flags(arguments)].append(obj.name)
    shared = {symbol: {" ".join(sorted(flags)) or "baseline": names for flags, names in by_flags.items()}
              for symbol, by_flags in definitions.items() if len(by_flags) > 1}
    assert not shared, f"symbols defined under different instruction sets (one copy wins at link time): {shared}"
