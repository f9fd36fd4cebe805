"""Round 34: an output for ``/dev/stdout`` (or a FIFO) is staged in the temporary folder;
a full ``TMPDIR`` was reported as "/dev/stdout: No space left on device"."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import pytest

from exprsim.io import replace_atomically, write_together


def _full(tmp: Path) -> None:
    raise OSError(errno.ENOSPC, "No space left on device", str(tmp))


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


def test_a_full_staging_folder_is_named_for_a_stream(
    fifo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    staging = tmp_path / "tmpdir"
    staging.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(staging))
    with pytest.raises(OSError) as err:
        replace_atomically(fifo, _full)
    assert err.value.errno == errno.ENOSPC
    assert str(staging) in err.value.filename  # was: the FIFO's own name
    assert "temporary folder" in err.value.filename and str(fifo) in err.value.filename
    assert list(staging.iterdir()) == []


def test_a_regular_file_is_still_named_itself(tmp_path: Path) -> None:
    with pytest.raises(OSError) as err:
        replace_atomically(tmp_path / "out.html", _full)
    assert err.value.filename == str(tmp_path / "out.html")


def test_write_together_names_the_staging_folder_of_a_stream(
    fifo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "gone"))  # cannot stage there
    with pytest.raises(OSError) as err:
        write_together([(fifo, b"x")])
    assert err.value.errno == errno.ENOENT
    assert err.value.filename.startswith(f"{tmp_path / 'gone'} (the temporary folder")
