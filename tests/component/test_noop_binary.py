"""``hack/noop.c``: the static no-op that pull pods run, so images without a shell can be cached.

The image build compiles it exactly like this (``gcc -static -Os -s``); the init container runs
``drop-noop --install /drop/noop`` and the target container runs the copy.
"""

from __future__ import annotations

import os
import stat
import struct
import subprocess
from pathlib import Path

import pytest

from devtools.tools import REPO_ROOT, system_tool

SOURCE = REPO_ROOT / "hack" / "noop.c"
PT_INTERP = 3


@pytest.fixture(scope="module")
def noop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = system_tool("gcc", "gcc")
    out = tmp_path_factory.mktemp("noop") / "drop-noop"
    subprocess.run(
        [str(gcc), "-static", "-Os", "-s", "-Wall", "-Wextra", "-Werror", "-o", str(out), str(SOURCE)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return out


def _program_header_types(path: Path) -> list[int]:
    """p_type of every ELF64 little-endian program header."""
    data = path.read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, "expected ELF64 little-endian"
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    return [struct.unpack_from("<I", data, phoff + i * phentsize)[0] for i in range(phnum)]


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
