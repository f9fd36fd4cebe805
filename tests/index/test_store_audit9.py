"""Ninth robustness round: a fault of the index's database is told by its type
(:class:`exprsim.errors.IndexDatabaseError`), not by the words of its message."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from stub_embedder import StubEmbedder, write_images

from exprsim.errors import ExprsimError, IndexDatabaseError
from exprsim.index.store import FaceIndex


def test_database_faults_are_typed_and_keep_their_one_line_message(tmp_path: Path) -> None:
    folder = tmp_path / "a folder"
    folder.mkdir()
    cases = [
        (folder, "is a directory, expected a database file"),
        (tmp_path / "gone" / "f.db", f"folder {tmp_path / 'gone'} does not exist"),
    ]
    for db, detail in cases:
        with pytest.raises(IndexDatabaseError) as caught:
            FaceIndex(db, embedder=StubEmbedder())
        err = caught.value
        assert (err.db, err.detail, err.read_only) == (str(db), detail, False)
        assert str(err) == f"{db}: {detail}"  # the message users saw before
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all " * 200)
    with pytest.raises(IndexDatabaseError, match="not a usable exprsim database"):
        FaceIndex(junk, embedder=StubEmbedder()).records()


def test_a_refused_write_to_a_read_only_index_says_so_in_its_type(
    tmp_path: Path, monkeypatch
) -> None:
    import exprsim.index.backends as backends

    paths = write_images(tmp_path / "imgs", 2)
    db = tmp_path / "f.db"
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        ix.add(paths[:1])
    monkeypatch.setattr(backends, "writable", lambda path: False)
    with FaceIndex(db, embedder=StubEmbedder()) as ix, pytest.raises(IndexDatabaseError) as c:
        ix.add(paths[1:])
    assert c.value.read_only and c.value.db == str(db)
    assert str(c.value).startswith(f"{db}: read-only (")


def test_the_error_pickles_whole() -> None:
    err = IndexDatabaseError("/srv/f.db", "no such database", read_only=True)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is IndexDatabaseError and isinstance(back, ExprsimError)
    assert (back.db, back.detail, back.read_only, str(back)) == (
        "/srv/f.db",
        "no such database",
        True,
        "/srv/f.db: no such database",
    )
