"""Seventeenth round (an audit of the process environment): a command whose stderr is
closed or full still does its work; a closed stdout is an error, not silence; a stdout
that cannot encode a name escapes it; a deleted working folder is named."""

from __future__ import annotations

import errno
import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from exprsim.cli.stdstreams import ClosedOutput, Diagnostics, escape_unencodable


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from exprsim.samples import sample_dir

    folder = tmp_path_factory.mktemp("photos")
    shutil.copy(sample_dir() / "grace_hopper.jpg", folder / "grace_hopper.jpg")
    shutil.copy(sample_dir() / "grace_hopper.jpg", folder / "café_ü.jpg")
    return folder


def _exprsim(shell_tail: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``python -m exprsim ARGS`` with the shell redirections ``shell_tail``."""
    command = f'"{sys.executable}" -m exprsim "$@" {shell_tail}'
    return subprocess.run(
        ["sh", "-c", command, "sh", *args],
        capture_output=True,
        timeout=300,
        check=False,
        cwd=cwd,
    )


@pytest.mark.parametrize("redirect", ["2>&-", "2>/dev/full"])
def test_a_closed_or_full_stderr_does_not_stop_the_work(
    photos: Path, tmp_path: Path, redirect: str
) -> None:
    """Audit: the first progress bar's write killed `faces` (exit 1, no table)."""
    out = tmp_path / "f.csv"
    done = _exprsim(redirect, "faces", str(photos), "-o", str(out))
    assert done.returncode == 0, done.stdout
    assert len(out.read_text().splitlines()) == 3  # header + 2 faces


def test_a_closed_stdout_is_an_error_after_the_files_are_saved(
    photos: Path, tmp_path: Path
) -> None:
    """Audit: `exprsim faces DIR >&-` exited 0 with the table lost; and (a review of the
    first fix) `classify -o` must still save its table before failing."""
    done = _exprsim(">&-", "-q", "faces", str(photos))
    assert done.returncode == 2
    assert b"standard output is closed" in done.stderr
    out = tmp_path / "c.csv"
    done = _exprsim(">&-", "-q", "classify", str(photos), "-o", str(out))
    assert done.returncode == 2 and b"standard output is closed" in done.stderr
    assert len(out.read_text().splitlines()) == 3


def test_an_ascii_stdout_escapes_names(photos: Path, tmp_path: Path) -> None:
    """Audit: under PYTHONIOENCODING=ascii a non-ASCII file name stopped `classify` with a
    UnicodeEncodeError before its -o file was written (here `faces`, the same print)."""
    done = subprocess.run(
        [sys.executable, "-m", "exprsim", "-q", "faces", str(photos)],
        capture_output=True,
        timeout=300,
        check=False,
        env={**_env(), "PYTHONIOENCODING": "ascii"},
    )
    assert done.returncode == 0, done.stderr
    assert b"caf\\xe9_\\xfc.jpg" in done.stdout and len(done.stdout.splitlines()) == 3


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


def test_a_deleted_working_folder_is_named(photos: Path, tmp_path: Path) -> None:
    """Audit: relative names failed with a nameless error, and the model's load with a
    fatal MKL message."""
    gone = tmp_path / "gone"
    gone.mkdir()
    command = f'cd "{gone}" && rmdir "{gone}" && exec "{sys.executable}" -m exprsim -q faces "$1"'
    done = subprocess.run(
        ["sh", "-c", command, "sh", str(photos)],
        capture_output=True,
        timeout=300,
        check=False,
        env={**_env(), "PYTHONPATH": _src_path()},
    )
    assert done.returncode == 2
    assert b"the working folder no longer exists" in done.stderr


def _src_path() -> str:
    import exprsim

    return str(Path(exprsim.__file__).parents[1])


def test_diagnostics_drop_what_cannot_be_written_and_try_again() -> None:
    class OnceFull(io.StringIO):
        full = True

        def write(self, text: str) -> int:
            if self.full:
                raise OSError(errno.ENOSPC, "No space left on device")
            return super().write(text)

    stream = OnceFull()
    err = Diagnostics(stream)
    assert err.write("a line\n") == 7 and err.failed
    err.flush()  # no error either
    stream.full = False  # the disk has room again: later lines are written
    err.write("later\n")
    assert stream.getvalue() == "later\n"


def test_closed_output_counts_what_was_lost() -> None:
    out = ClosedOutput()
    assert out.write("a,b\n") == 4 and out.lost == 4


def test_escape_unencodable_only_touches_streams_that_need_it() -> None:
    ascii_out = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    escape_unencodable(ascii_out)
    ascii_out.write("café\n")
    ascii_out.flush()
    assert ascii_out.buffer.getvalue() == b"caf\\xe9\n"
    utf8 = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    escape_unencodable(utf8)
    assert utf8.errors == "strict"
