"""Round 24: a new file written through ``replace_atomically`` gets the umask's mode even
when its writer makes it private (safetensors creates its files 0600: a model folder a
server running as another user could not load)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from exprsim.io import replace_atomically


def _private_writer(tmp: Path) -> None:
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, b"weights")
    os.close(fd)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the umask on Linux")
def test_a_new_file_gets_the_umask_mode(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        replace_atomically(tmp_path / "model.safetensors", _private_writer)
        assert stat.S_IMODE((tmp_path / "model.safetensors").stat().st_mode) == 0o644  # was 0o600
        os.umask(0o077)
        replace_atomically(tmp_path / "other.safetensors", _private_writer)
        assert stat.S_IMODE((tmp_path / "other.safetensors").stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_a_replaced_file_keeps_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"old")
    target.chmod(0o640)
    replace_atomically(target, _private_writer)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640 and target.read_bytes() == b"weights"
