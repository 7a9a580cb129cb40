"""A Debian trixie root file system for an ARM architecture, unpacked from Debian's packages (no root, no chroot):
Python 3.13 with Debian's numpy, onnx and onnxruntime 1.21 (what `apt install python3-onnxruntime` gives on a
Raspberry Pi OS or Debian device), pytest, and the pure-Python wheels bnn2onnx's ops tests import beside them.
qemu-user runs its Python with `-L SYSROOT`. Also fetches trixie's qemu-user (10.0; bookworm's 7.2 crashes in
onnxruntime's import).

    python tests/arm/debian_sysroot.py arm64|armhf     (prints the sysroot's path; build/arm/<arch>/)

Everything is downloaded once into build/arm/ and reused while this file and the package list are unchanged.
"""

from __future__ import annotations

import hashlib
import lzma
import re
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build" / "arm"
MIRROR = "http://deb.debian.org/debian"
SUITE = "trixie"
PACKAGES = ["python3", "python3-numpy", "python3-onnx", "python3-onnxruntime", "python3-pytest", "python3-rich"]
# Pure-Python packages from PyPI that Debian does not carry.
WHEELS = ["onnx-graphsurgeon==0.6.1"]
# Never needed to run Python programs in the emulator: maintainer-script and documentation machinery.
SKIPPED = {"debconf", "dpkg", "install-info", "perl-base", "sensible-utils", "tzdata", "media-types", "readline-common",
           "netbase", "debianutils", "init-system-helpers", "base-files"}


def _download(url: str, path: Path) -> Path:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(path.suffix + ".part")
        with urllib.request.urlopen(url, timeout=300) as response, open(partial, "wb") as out:
            while chunk := response.read(1 << 20):
                out.write(chunk)
        partial.rename(path)
    return path


def package_index(arch: str) -> dict[str, dict[str, str]]:
    """Package name -> its fields; virtual names (Provides) map to a package that provides them."""
    index_path = _download(f"{MIRROR}/dists/{SUITE}/main/binary-{arch}/Packages.xz", BUILD / f"Packages-{arch}.xz")
    packages: dict[str, dict[str, str]] = {}
    provided: dict[str, dict[str, str]] = {}
    for stanza in lzma.decompress(index_path.read_bytes()).decode().split("\n\n"):
        fields = dict(re.findall(r"^([\w-]+): (.*)$", stanza, re.MULTILINE))
        if "Package" not in fields:
            continue
        packages[fields["Package"]] = fields
        for name in re.split(r",\s*", fields.get("Provides", "")):
            if name:
                provided.setdefault(name.split()[0], fields)
    return {**provided, **packages}


def dependency_closure(index: dict[str, dict[str, str]], roots: list[str]) -> list[dict[str, str]]:
    """The packages `roots` need (Depends and Pre-Depends; of alternatives, the first one known)."""
    chosen: dict[str, dict[str, str]] = {}
    pending = list(roots)
    while pending:
        name = pending.pop()
        fields = index[name]
        if fields["Package"] in chosen or fields["Package"] in SKIPPED:
            continue
        chosen[fields["Package"]] = fields
        for relation in ("Pre-Depends", "Depends"):
            for group in re.split(r",\s*", fields.get(relation, "")):
                alternatives = [a.split()[0].split(":")[0] for a in group.split("|") if a.strip()]
                known = [a for a in alternatives if a in index]
                if known:
                    pending.append(known[0])
    return list(chosen.values())


def unpack(deb: Path, into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(into)], check=True)


def _stamp() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


def qemu_user(arch: str) -> Path:
    """trixie's static qemu-user binary for `arch` (qemu-aarch64 or qemu-arm)."""
    program = {"arm64": "qemu-aarch64", "armhf": "qemu-arm"}[arch]
    binary = BUILD / "qemu" / "usr" / "bin" / program
    if not binary.exists():
        fields = package_index("amd64")["qemu-user"]
        unpack(_download(f"{MIRROR}/{fields['Filename']}", BUILD / "debs" / Path(fields["Filename"]).name),
               BUILD / "qemu")
    return binary


def emulator(arch: str, *options: str) -> list[str]:
    """The command prefix that runs a program of `arch` under qemu-user in its sysroot."""
    return [str(qemu_user(arch)), "-L", str(sysroot(arch)), *options]


def onnxruntime_library(arch: str) -> Path:
    """Debian's libonnxruntime in the sysroot (what a C++ program on the device loads)."""
    return next((sysroot(arch) / "usr" / "lib").glob("*-linux-gnu*/libonnxruntime.so.1.*"))


def sysroot(arch: str) -> Path:
    """build/arm/<arch>/sysroot, built when missing or when this file changed."""
    target = BUILD / arch / "sysroot"
    stamp = BUILD / arch / "stamp"
    if target.exists() and stamp.exists() and stamp.read_text() == _stamp():
        return target
    stamp.unlink(missing_ok=True)
    if target.exists():
        subprocess.run(["rm", "-rf", str(target)], check=True)
    index = package_index(arch)
    # trixie's file systems have merged /usr: the programs' loader path /lib/ld-linux-*.so.* is usr/lib's.
    target.mkdir(parents=True)
    for top in ("bin", "lib", "sbin"):
        (target / top).symlink_to(f"usr/{top}")
    for fields in dependency_closure(index, PACKAGES):
        unpack(_download(f"{MIRROR}/{fields['Filename']}", BUILD / "debs" / Path(fields["Filename"]).name), target)
    # What libblas3's and liblapack3's maintainer scripts would do (update-alternatives): their libraries live
    # in blas/ and lapack/ subdirectories, and numpy links to them by name in the directory above.
    for library in [*target.glob("usr/lib/*/blas/libblas.so.3"), *target.glob("usr/lib/*/lapack/liblapack.so.3")]:
        (library.parent.parent / library.name).symlink_to(library.relative_to(library.parent.parent))
    wheels = BUILD / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d",
                    str(wheels), *WHEELS], check=True)
    site = target / "usr" / "lib" / "python3" / "dist-packages"
    for wheel in wheels.glob("*.whl"):
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(site)
    stamp.write_text(_stamp())
    return target


if __name__ == "__main__":
    print(sysroot(sys.argv[1]))
