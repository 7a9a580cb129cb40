"""Instructions the bnn2onnx library executes on aarch64 for each 3x3 stride-1 layer of layer_speed.py (packed
input, float output, one run), with the NEON kernels and with the portable ones, counted under qemu user-mode
emulation: qemu logs every translated block inside the library's code (`-d in_asm,exec,nochain -dfilter`), and the
instructions of each executed block are summed. Counts, not times: the same for the same binary and input on any
host. Session creation (weight packing) is included, the same for both tiers.

    python bench/arm_instruction_counts.py

Uses the cross-built library and C++ example program and the Debian sysroot of the ARM tests (tests/arm/).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "tests"), str(ROOT / "tests" / "arm")]

import debian_sysroot
from layer_speed import SHAPES, conv_layer
from library_builds import cross_build, example_program

TRIPLE = "aarch64-linux-gnu"
BLOCK = re.compile(r"^(0x[0-9a-f]+):\s")
EXECUTED = re.compile(r"^Trace \d+: 0x[0-9a-f]+ \[[0-9a-f]+/([0-9a-f]+)/")


def _command(model: Path, inputs: Path) -> list[str]:
    return [str(example_program(TRIPLE)), str(debian_sysroot.onnxruntime_library("arm64")),
            str(cross_build(TRIPLE).library), str(model), str(inputs)]


def _qemu(*options: str) -> list[str]:
    # setarch -R: no address randomization, so that the library lands at the same guest address from run to run.
    return ["setarch", "-R", *debian_sysroot.emulator("arm64", *options)]


def library_text(strace: str) -> tuple[int, int]:
    """(start, size) of the library's executable mapping in a run's -strace output."""
    lines = strace.splitlines()
    opened = next(i for i, line in enumerate(lines) if "libbnn2onnx_ops.so" in line and "openat" in line)
    mapping = next(line for line in lines[opened:] if "PROT_EXEC" in line)
    size, start = re.search(r"mmap\(0x[0-9a-f]+,(\d+),.*= (0x[0-9a-f]+)", mapping).groups()
    return int(start, 16), int(size)


def _count_log(fifo: Path, total: list[int], syscalls: list[str]) -> None:
    """Sums the instructions of every executed block in a qemu log of in_asm and exec records; keeps the -strace
    records of opened files and executable mappings (qemu logs those to the same file)."""
    sizes: dict[int, int] = {}
    block_start, block_size = None, 0
    with open(fifo) as log:
        for line in log:
            if "openat(" in line or "PROT_EXEC" in line:
                syscalls.append(line)
            elif line.startswith("Trace"):
                total[0] += sizes[int(EXECUTED.match(line).group(1), 16)]
            elif (instruction := BLOCK.match(line)) is not None:
                if block_start is None:
                    block_start, block_size = int(instruction.group(1), 16), 0
                block_size += 1
            elif block_start is not None:  # a block's listing ends with a blank line
                sizes[block_start] = block_size
                block_start = None


def executed_instructions(model: Path, inputs: Path, isa: str, attempts: int = 8) -> int:
    """Instructions executed inside the library's code with BNN2ONNX_ISA=isa. The log is limited to the address
    range where the previous run mapped the library (setarch -R makes that mostly stable); a run whose own
    -strace shows another address is repeated with that one."""
    environment = {**os.environ, "BNN2ONNX_ISA": isa}
    text = library_text(subprocess.run([*_qemu("-strace"), *_command(model, inputs)], env=environment,
                                       capture_output=True, text=True, check=True).stderr)
    for _ in range(attempts):
        with tempfile.TemporaryDirectory() as directory:
            fifo = Path(directory) / "log"
            os.mkfifo(fifo)
            start, size = text
            process = subprocess.Popen([*_qemu("-strace", "-d", "in_asm,exec,nochain", "-dfilter",
                                               f"{start:#x}+{size:#x}", "-D", str(fifo)), *_command(model, inputs)],
                                       env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            total, syscalls = [0], []
            reader = threading.Thread(target=_count_log, args=(fifo, total, syscalls))
            reader.start()
            process.wait()
            reader.join()
            if process.returncode != 0:
                raise RuntimeError(f"run_model failed under qemu with BNN2ONNX_ISA={isa}")
            if library_text("\n".join(syscalls)) == text:
                return total[0]
            text = library_text("\n".join(syscalls))
    raise RuntimeError(f"the library's address did not repeat in {attempts} runs")


def main() -> None:
    rng = np.random.default_rng(0)
    print(f"bnn2onnx library instructions on aarch64 (qemu, {TRIPLE} build), one run of each layer, float output")
    print(f"{'layer':24s} {'portable':>14s} {'neon':>14s}  neon/portable")
    with tempfile.TemporaryDirectory() as directory:
        for c_in, c_out, size, k, stride in SHAPES:
            if (k, stride) != (3, 1):
                continue
            layer = conv_layer(rng, c_in, c_out, size, k, stride)
            model, inputs = Path(directory) / "layer.onnx", Path(directory) / "x.npy"
            binary = layer.binary_models[0]
            # The lowest IR version for its opsets, as converted models carry: Debian's onnxruntime reads up to 10.
            binary.ir_version = onnx.helper.find_min_ir_version_for(list(binary.opset_import), ignore_unknown=True)
            onnx.save(binary, model)
            np.save(inputs, layer.packed_x)
            portable = executed_instructions(model, inputs, "portable")
            neon = executed_instructions(model, inputs, "neon")
            print(f"{layer.name:24s} {portable:14,d} {neon:14,d}  {neon / portable:.3f}", flush=True)


if __name__ == "__main__":
    main()
