"""Audit 7 (storage, concurrency, crash consistency), CLI side: findings 1, 4, 5, 7 and 10
of /tmp/audit7/store.md. Each test failed before its fix."""

from __future__ import annotations

import contextlib
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_run import digest, one_line, run, stub_cli_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "index"))
from stub_embedder import StubEmbedder, write_images


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> StubEmbedder:
    """The CLI's model is the stub (no network, no detector)."""
    return stub_cli_model(monkeypatch, StubEmbedder())


@pytest.fixture
def short_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite connections wait at most 0.5 s for a lock (30 s in use)."""
    real = sqlite3.connect

    def connect(*args, **kwargs):
        kwargs["timeout"] = min(float(kwargs.get("timeout", 5.0)), 0.5)
        return real(*args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", connect)


def test_index_add_to_a_side_file_name_is_refused(tmp_path: Path, stub, capsys) -> None:
    imgs = write_images(tmp_path / "imgs", 3)
    db = tmp_path / "faces.db"
    assert run(capsys, "index", "add", str(imgs[0]), "--db", str(db))[0] == 0
    for name in ("faces.db-wal", "g.db.ann", "faces.db.ann.json", "faces.db.lock"):
        side = tmp_path / name
        before = digest(side) if side.exists() else None
        rc, _, err = run(capsys, "index", "add", str(imgs[1]), "--db", str(side))
        assert rc == 2 and "choose a name not ending in" in one_line(err)  # was rc 0
        assert (digest(side) if side.exists() else None) == before
    rc, _, err = run(capsys, "tag", "add", "happy", str(imgs[1]), "--db", f"{db}-shm")
    assert rc == 2 and "shared-memory file" in one_line(err)
    assert stub.calls == 1  # refused before any image was embedded


def test_a_newer_schema_is_refused_and_left_unchanged(tmp_path: Path, capsys) -> None:
    from exprsim.index.store import FaceIndex

    db = tmp_path / "s2.db"
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        ix.add(write_images(tmp_path / "imgs", 2))
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema'")
    conn.execute("DROP TRIGGER faces_log_ins")
    conn.close()
    before = digest(db)
    rc, _, err = run(capsys, "index", "info", "--db", str(db))
    assert rc == 2 and "made by a newer exprsim" in one_line(err)
    assert digest(db) == before  # was: WAL mode, the trigger made again


@contextlib.contextmanager
def held_index(tmp_path: Path, n_images: int, *setup: str) -> Iterator[Path]:
    """An index of ``n_images`` stub images, held by another connection that ran
    ``setup`` and then wrote a row, until the block ends (then rolled back)."""
    from exprsim.index.store import FaceIndex

    db = tmp_path / "lk.db"
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        ix.add(write_images(tmp_path / "imgs", n_images))
    holder = sqlite3.connect(db, isolation_level=None)
    for sql in setup:
        holder.execute(sql)
    holder.execute("INSERT INTO meta VALUES ('x', 'y')")
    try:
        yield db
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_index_info_does_not_wait_for_a_writer(tmp_path: Path, short_waits, capsys) -> None:
    # a bulk load holding its one transaction
    with held_index(tmp_path, 2, "BEGIN IMMEDIATE") as db:
        t0 = time.perf_counter()
        rc, out, err = run(capsys, "index", "info", "--db", str(db))
        assert rc == 0 and "faces" in out, err  # was: "database is locked"
        assert time.perf_counter() - t0 < 0.5
        rc, _, err = run(capsys, "tag", "list", "--db", str(db))
        assert rc == 0, err
        rc, _, err = run(capsys, "index", "remove", str(tmp_path / "imgs"), "--db", str(db))
        line = one_line(err)
        assert rc == 2 and f"another process is writing to {db}" in line  # was: raw sqlite


def test_index_add_ann_is_kept_by_the_next_add(tmp_path: Path, stub, capsys) -> None:
    pytest.importorskip("faiss")
    imgs = write_images(tmp_path / "imgs", 3)
    db = str(tmp_path / "an.db")
    assert run(capsys, "index", "add", str(imgs[0]), "--db", db, "--ann", "faiss-hnsw")[0] == 0
    assert run(capsys, "index", "add", str(imgs[1]), "--db", db)[0] == 0
    rc, out, _ = run(capsys, "index", "info", "--db", db)
    assert rc == 0 and "faiss-hnsw" in out  # was: retrained as exact by the plain add


def test_tag_remove_of_an_unknown_name_fails(tmp_path: Path, stub, capsys) -> None:
    from exprsim.index.store import FaceIndex

    imgs = write_images(tmp_path / "imgs", 2)
    db = tmp_path / "f.db"
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        ix.add(imgs)
        ix.add_tags([r.id for r in ix.records()][:1], "mine")  # a tag without references
    rc, out, err = run(capsys, "tag", "remove", "nothere", "--db", str(db))
    assert rc == 1 and "no tag named 'nothere'" in one_line(err) and not out  # was rc 0
    rc, out, _ = run(capsys, "tag", "remove", "mine", "--db", str(db))
    assert rc == 0 and "removed 0 reference faces of 'mine'" in out
    assert "and the tag from 1 face" in out  # round 37: what it did to the faces, said
    with FaceIndex(db) as ix:
        assert [r.tags for r in ix.records()] == [(), ()]


def test_an_index_locked_when_opened_is_not_called_damaged(
    tmp_path: Path, short_waits, capsys
) -> None:
    # a program that shuts out readers too
    with held_index(tmp_path, 1, "PRAGMA locking_mode=EXCLUSIVE", "BEGIN EXCLUSIVE") as db:
        rc, _, err = run(capsys, "index", "info", "--db", str(db))
        line = one_line(err)
        assert rc == 2 and "another process is writing" in line  # was: "not a usable ..."
        assert "not a usable" not in line
