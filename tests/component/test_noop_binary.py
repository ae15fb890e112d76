"""``hack/noop.c``: the static no-op that pull pods run, so images without a shell can be cached.

Compiled with the flags the Dockerfile uses (read from it), for this machine and, with Debian's
cross compiler, for arm64 nodes; the init container runs ``drop-noop --install /drop/noop`` and the
target container runs the copy.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import struct
import subprocess
from pathlib import Path

import pytest

from devtools.tools import REPO_ROOT, system_tool

SOURCE = REPO_ROOT / "hack" / "noop.c"
PT_INTERP = 3
EM_AARCH64 = 183
ARM64_CROSS = "gcc-aarch64-linux-gnu libc6-dev-arm64-cross"


def dockerfile_gcc_flags() -> list[str]:
    """The flags of the Dockerfile's ``RUN gcc ... -o /drop-noop noop.c``: what ships is what is tested."""
    match = re.search(r"RUN gcc (.+?) -o /drop-noop noop\.c", (REPO_ROOT / "Dockerfile").read_text())
    assert match, "the Dockerfile no longer compiles drop-noop with `RUN gcc <flags> -o /drop-noop noop.c`"
    return match.group(1).split()


def _compile(gcc: str | Path, out: Path) -> Path:
    subprocess.run(
        [str(gcc), *dockerfile_gcc_flags(), "-o", str(out), str(SOURCE)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return out


@pytest.fixture(scope="module")
def noop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _compile(system_tool("gcc", "gcc"), tmp_path_factory.mktemp("noop") / "drop-noop")


@pytest.fixture(scope="module")
def noop_arm64(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = shutil.which("aarch64-linux-gnu-gcc")
    libc = Path("/usr/aarch64-linux-gnu/lib/libc.a")
    if gcc is None or not libc.exists():
        pytest.fail(
            "the aarch64 cross compiler and its static libc are missing: run `bash hack/apt-packages.sh` "
            f"(or `apt-get install -y --no-install-recommends {ARM64_CROSS}`)",
            pytrace=False,
        )
    return _compile(gcc, tmp_path_factory.mktemp("noop-arm64") / "drop-noop")


def _elf64(path: Path) -> tuple[int, list[int]]:
    """(e_machine, p_type of every program header) of an ELF64 little-endian file."""
    data = path.read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, "expected ELF64 little-endian"
    (machine,) = struct.unpack_from("<H", data, 0x12)
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    return machine, [struct.unpack_from("<I", data, phoff + i * phentsize)[0] for i in range(phnum)]


def _program_header_types(path: Path) -> list[int]:
    return _elf64(path)[1]


@pytest.mark.parametrize("args", [[], ["sleep", "infinity"], ["--install"], ["--help"]])
def test_exits_zero_whatever_the_arguments(noop: Path, args: list[str]) -> None:
    result = subprocess.run([str(noop), *args], capture_output=True, timeout=10, env={}, check=False)
    assert result.returncode == 0
    assert result.stdout == b"" and result.stderr == b""


def test_is_static_so_it_runs_in_any_image(noop: Path) -> None:
    assert PT_INTERP not in _program_header_types(noop), "a dynamic loader would tie it to the image's libc"


def test_install_copies_a_runnable_executable_even_under_a_strict_umask(noop: Path, tmp_path: Path) -> None:
    dest = tmp_path / "shared" / "noop"
    dest.parent.mkdir()
    result = subprocess.run([str(noop), "--install", str(dest)], timeout=10, umask=0o077, check=False)
    assert result.returncode == 0
    assert dest.read_bytes() == noop.read_bytes()
    assert stat.S_IMODE(dest.stat().st_mode) == 0o755, "the target container may run as another uid"
    assert subprocess.run([str(dest)], timeout=10, check=False).returncode == 0


def test_install_overwrites_an_existing_file(noop: Path, tmp_path: Path) -> None:
    dest = tmp_path / "noop"
    dest.write_bytes(b"x" * (noop.stat().st_size + 4096))
    subprocess.run([str(noop), "--install", str(dest)], timeout=10, check=True)
    assert dest.read_bytes() == noop.read_bytes()


def test_install_fails_loudly_when_it_cannot_write(noop: Path, tmp_path: Path) -> None:
    dest = tmp_path / "missing-dir" / "noop"
    result = subprocess.run([str(noop), "--install", str(dest)], timeout=10, check=False)
    assert result.returncode != 0
    assert not os.path.exists(dest)


def test_arm64_build_is_a_static_aarch64_executable(noop_arm64: Path) -> None:
    machine, headers = _elf64(noop_arm64)
    assert machine == EM_AARCH64
    assert PT_INTERP not in headers, "a dynamic loader would tie it to the image's libc"
    # The same facts as `file` reports them (it reads the headers independently of this test).
    described = subprocess.run(
        [str(system_tool("file", "file")), "--brief", str(noop_arm64)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    assert "ARM aarch64" in described and "statically linked" in described, described
