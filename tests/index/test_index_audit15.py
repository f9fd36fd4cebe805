"""Fifteenth robustness round, the SQLite index on a full disk: words that point at the
disk, and a rebuild that could not be saved says so."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path
from typing import NamedTuple

import pytest
from stub_embedder import StubEmbedder, write_images

from exprsim.index.backends import _open_failure
from exprsim.index.store import FaceIndex


class _Usage(NamedTuple):
    total: int
    used: int
    free: int


def _error(text: str, code: int) -> sqlite3.OperationalError:
    exc = sqlite3.OperationalError(text)
    exc.sqlite_errorcode = code  # type: ignore[attr-defined]
    return exc


@pytest.mark.parametrize(
    ("code", "free", "expect"),
    [
        (10 | (3 << 8), 0, "its disk is full"),  # SQLITE_IOERR_WRITE, nothing free
        (13, 100, "its disk is full"),  # SQLITE_FULL
        (10, 1 << 30, "is its disk full or failing?"),  # an I/O error, room to spare
        (26, 0, "not a usable exprsim database"),  # SQLITE_NOTADB: the file itself
    ],
)
def test_an_index_on_a_full_disk_is_not_called_unusable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, free: int, expect: str
) -> None:
    """Audit: on a full disk every index command, reads included, said "not a usable
    exprsim database (disk I/O error)" of an intact database (SQLite could not make its
    -shm file)."""
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda p: _Usage(1 << 30, (1 << 30) - free, free))
    text = _open_failure(tmp_path / "f.db", _error("disk I/O error", code))
    assert expect in text and "disk I/O error" in text


def test_a_rebuild_that_cannot_be_saved_is_not_reported_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Audit: `index rebuild` printed "rebuilt ..." and exited 0 when the cache could not be
    written (a full disk, a read-only folder): it lived in that process only."""
    from exprsim.cli import main
    from exprsim.index import ann

    db = tmp_path / "f.db"
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        ix.add(write_images(tmp_path / "p", 3))
    assert main(["-q", "index", "rebuild", "--db", str(db)]) == 0
    capsys.readouterr()

    def full_disk(*a: object, **k: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ann, "save_cache", full_disk)
    assert main(["-q", "index", "rebuild", "--db", str(db)]) == 1
    out, err = capsys.readouterr()
    assert "rebuilt" not in out and "No space left on device" in err  # why, then what
    assert "could not save it beside" in err.strip().splitlines()[-1]


def test_a_full_disk_in_mid_command_names_the_database_and_the_disk() -> None:
    """Audit: `index add` on a disk that filled said "error: database: database or disk is
    full" ("database:" where the file's name belongs)."""
    import argparse

    from exprsim.cli import _sqlite_message

    args = argparse.Namespace(db="photos.db")
    text = _sqlite_message(_error("database or disk is full", 13), args)
    assert text.startswith("photos.db: its disk is full or failing (database or disk is full)")
    assert _sqlite_message(_error("no such table: x", 1), args) == "database: no such table: x"


def test_a_failed_atomic_write_names_its_file_not_the_hidden_one(tmp_path: Path) -> None:
    from exprsim.io import replace_atomically

    def full_disk(tmp: Path) -> None:
        tmp.write_bytes(b"abc")
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp))

    target = tmp_path / "summary.csv"
    with pytest.raises(OSError) as err:
        replace_atomically(target, full_disk)
    assert err.value.filename == str(target) and err.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


def test_a_copy_of_a_photo_indexed_with_another_detector_gets_its_own_faces(
    tmp_path: Path,
) -> None:
    """Audit: after `index add a.jpg --detector haar`, `index add b.jpg` (a byte copy, the
    default detector) stored haar's faces for b.jpg without a word (boxes 82 px off)."""
    (a,) = write_images(tmp_path / "p", 1)
    b, c = (tmp_path / name / f"{name}.png" for name in ("q", "r"))  # two byte copies
    for copy in (b, c):
        copy.parent.mkdir()
        copy.write_bytes(a.read_bytes())
    stub = StubEmbedder()
    with FaceIndex(tmp_path / "f.db", embedder=stub) as ix:
        ix.add([a], detector="haar")
        calls = stub.calls
        ix.add([b])
        assert stub.calls == calls + 1  # detected again, not copied
        (rec,) = [r for r in ix.records() if r.source == str(b.resolve())]
        assert rec.detector == "mediapipe"
        ix.add([c])  # a copy of a default-detector file is still copied
        assert stub.calls == calls + 1
