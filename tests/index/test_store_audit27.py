"""Round 27 (docs/robustness.md): a file rewritten with its old size and time."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from stub_embedder import StubEmbedder, grid_embedding

from exprsim.index import backends
from exprsim.index.store import FaceIndex


def _bmp(path: Path, seed: int) -> bytes:
    """An uncompressed image: every one of them has the same number of bytes."""
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(1, 255, (32, 32, 3), dtype=np.uint8)).save(path, "BMP")
    return path.read_bytes()


def _rewrite_keeping_time(path: Path, data: bytes) -> None:
    """What ``cp -p`` or ``exiftool -P`` do: other bytes, the old modification time."""
    st = os.stat(path)
    assert len(data) == st.st_size
    path.write_bytes(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_mtime_ns == st.st_mtime_ns


def run_sql(store: str | Path, sql: str) -> None:
    """Run one statement on the index with the engine's own client."""
    if isinstance(store, Path):
        with sqlite3.connect(store) as conn:
            conn.execute(sql)
        return
    import psycopg

    with psycopg.connect(store, autocommit=True) as conn:
        conn.execute(sql)


def _drop_ctime(store: str | Path) -> None:
    """Make the index look like one made before ``files.ctime_ns`` existed."""
    run_sql(store, "ALTER TABLE files DROP COLUMN ctime_ns")


def test_a_file_rewritten_with_its_old_size_and_time_is_indexed_again(store, tmp_path):
    photo = tmp_path / "a.bmp"
    _bmp(photo, 0)
    other = _bmp(tmp_path / "other.bmp", 1)
    expected = grid_embedding(np.asarray(Image.open(tmp_path / "other.bmp").convert("RGB")))
    with FaceIndex(store, embedder=StubEmbedder()) as ix:
        ix.add([photo])
        _rewrite_keeping_time(photo, other)
        report = ix.add([photo])
        assert [o.status for o in report.files] == ["updated"]  # was "skipped"
        emb = ix.embeddings()[1]
    np.testing.assert_allclose(emb[0], expected, atol=1e-6)


def test_a_file_only_touched_is_read_but_not_embedded_again(store, tmp_path):
    photo = tmp_path / "a.bmp"
    _bmp(photo, 0)
    stub = StubEmbedder()
    with FaceIndex(store, embedder=stub) as ix:
        ix.add([photo])
        os.chmod(photo, 0o600)  # a new change time, the same bytes
        assert [o.status for o in ix.add([photo]).files] == ["skipped"]
        assert [o.status for o in ix.add([photo]).files] == ["skipped"]
    assert stub.calls == 1


def test_an_index_made_before_the_change_time_gets_its_column(store, tmp_path):
    a, b = tmp_path / "a.bmp", tmp_path / "b.bmp"
    _bmp(a, 0)
    _bmp(b, 1)
    with FaceIndex(store, embedder=StubEmbedder()) as ix:
        ix.add([a])
    _drop_ctime(store)
    stub = StubEmbedder()
    with FaceIndex(store, embedder=stub) as ix:
        assert ix._db.file_ctime
        assert [o.status for o in ix.add([a, b]).files] == ["skipped", "added"]
        _rewrite_keeping_time(b, _bmp(tmp_path / "c.bmp", 2))
        assert [o.status for o in ix.add([b]).files] == ["updated"]
    assert stub.calls == 2


def test_a_read_only_index_made_before_the_change_time_is_read(tmp_path, monkeypatch):
    db, photo = tmp_path / "faces.db", tmp_path / "a.bmp"
    _bmp(photo, 0)
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        ix.add([photo])
    _drop_ctime(db)
    monkeypatch.setattr(backends, "writable", lambda path: False)
    with FaceIndex(db) as ix:
        assert not ix._db.file_ctime
        assert len(ix) == 1
        assert [Path(r.source).name for r in ix.records()] == ["a.bmp"]
    with sqlite3.connect(db) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(files)")}
    assert "ctime_ns" not in columns  # left as it was


def test_another_programs_table_without_the_new_column_is_still_told_apart(tmp_path):
    db = tmp_path / "faces.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT)")
        conn.execute("CREATE TABLE faces (id INTEGER PRIMARY KEY)")
    with pytest.raises(Exception, match="something else"):
        FaceIndex(db)


def test_a_postgres_writer_that_may_not_add_the_column_adds_photos(pg_url, tmp_path, caplog):
    import logging
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    a, b = tmp_path / "a.bmp", tmp_path / "b.bmp"
    _bmp(a, 0)
    _bmp(b, 1)
    with FaceIndex(pg_url, embedder=StubEmbedder()) as ix:
        ix.add([a])
    _drop_ctime(pg_url)
    db = urlsplit(pg_url).path.lstrip("/")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for sql in (
            "DROP ROLE IF EXISTS rowwriter27",
            "CREATE ROLE rowwriter27 LOGIN",
            f"GRANT CONNECT ON DATABASE {db} TO rowwriter27",
            "GRANT USAGE ON SCHEMA public TO rowwriter27",
            "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO rowwriter27",
            "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO rowwriter27",
        ):
            conn.execute(sql)
    parts = urlsplit(pg_url)
    url = urlunsplit(parts._replace(netloc="rowwriter27@" + parts.netloc.rsplit("@", 1)[-1]))
    try:
        with caplog.at_level(logging.WARNING), FaceIndex(url, embedder=StubEmbedder()) as ix:
            assert not ix._db.file_ctime
            assert [o.status for o in ix.add([a, b]).files] == ["skipped", "added"]
            assert len(ix) == 2
        assert "may not add the column files.ctime_ns" in caplog.text
        with FaceIndex(pg_url) as ix:  # the owner: the column comes
            assert ix._db.file_ctime
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("DROP OWNED BY rowwriter27")
            conn.execute("DROP ROLE rowwriter27")


def _hold_write_lock(db: Path) -> sqlite3.Connection:
    """Another process's write transaction (an older exprsim's `index add`, say)."""
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    return other


def test_opening_an_earlier_index_never_waits_for_a_writer(tmp_path):
    import time

    db, photo = tmp_path / "faces.db", tmp_path / "a.bmp"
    _bmp(photo, 0)
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        ix.add([photo])
    _drop_ctime(db)
    other = _hold_write_lock(db)
    try:
        t0 = time.monotonic()
        with FaceIndex(db) as ix:  # was: 30 s, then "another process is writing"
            assert len(ix) == 1 and not ix._db.file_ctime
        assert time.monotonic() - t0 < 5
    finally:
        other.execute("ROLLBACK")
        other.close()
    with FaceIndex(db) as ix:
        assert ix._db.file_ctime  # the next opener adds the column


def test_identity_descriptors_of_faces_removed_meanwhile_are_skipped(store, tmp_path):
    paths = [tmp_path / f"{i}.bmp" for i in range(2)]
    for i, p in enumerate(paths):
        _bmp(p, i)
    with FaceIndex(store, embedder=StubEmbedder()) as ix:
        ix.add(paths)
        ids = [r.id for r in ix.records()]
        d = np.ones(128, np.float32)
        ix.remove([str(paths[0])])  # another process's `index remove`, during the search
        ix.store_identity_descriptors({ids[0]: d, ids[1]: d})  # was: FOREIGN KEY failed
        cached = ix.identity_descriptors([ids[1]])
    assert list(cached) == [ids[1]]


def test_caching_identity_descriptors_never_waits_for_a_writer(tmp_path):
    import time

    db, photo = tmp_path / "faces.db", tmp_path / "a.bmp"
    _bmp(photo, 0)
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        ix.add([photo])
        (face,) = [r.id for r in ix.records()]
        other = _hold_write_lock(db)
        try:
            t0 = time.monotonic()
            ix.store_identity_descriptors({face: np.ones(128, np.float32)})  # was: 30 s
            assert time.monotonic() - t0 < 5
        finally:
            other.execute("ROLLBACK")
            other.close()


def _tree_table(n: int):
    """``n`` bulk-loaded sources in nested folders, some names prefixes of others."""
    from test_bulk import embed_table

    table = embed_table(n)
    names = []
    for i in range(n):
        folder = ("/p/a", "/p/a/b", "/p/ab", "/p/a b", "/q")[i % 5]
        names.append(f"{folder}/img{i % 7}{'x' * (i % 3)}.jpg")
    table["source"] = names
    return table.drop_duplicates("source").reset_index(drop=True)


def test_removing_many_paths_matches_a_plain_reference(tmp_path):
    rng = np.random.default_rng(0)
    table = _tree_table(60)
    stored = set(table["source"])
    inputs = ["/p/a", "/p/ab/img1.jpg", "/p/a/b/img2x.jpg", "/nothing", "/p/a/b", "/q/img3.jpg"]
    inputs += [str(s) for s in rng.choice(sorted(stored), 5, replace=False)]
    expect_gone: list[str] = []
    expect_missed = []
    for p in inputs:  # the reference: a loop over every stored path, input by input
        mine = [
            s for s in sorted(stored) if (s == p or s.startswith(p + "/")) and s not in expect_gone
        ]
        if not mine:
            expect_missed.append(p)
        expect_gone += mine
    with FaceIndex(tmp_path / "faces.db") as ix:
        ix.add_table(table)
        missed: list = []
        assert ix.remove(inputs, missed=missed) == len(expect_gone)
        left = set(ix.files()["path"])
    assert missed == expect_missed
    assert left == stored - set(expect_gone)


def test_removing_many_paths_reads_the_table_once(tmp_path, monkeypatch):
    table = _tree_table(60)
    with FaceIndex(tmp_path / "faces.db") as ix:
        ix.add_table(table)
        statements: list[str] = []
        real = type(ix._db).execute

        def counted(self, sql, params=()):
            statements.append(sql)
            return real(self, sql, params)

        monkeypatch.setattr(type(ix._db), "execute", counted)
        paths = list(table["source"])[:40]
        assert ix.remove(paths) == 40
    on_files = [s for s in statements if "FROM files" in s]
    # was 41: a look, then a DELETE ... WHERE path = ? OR substr(...) per path, each a
    # scan of the whole table
    assert len(on_files) <= 3


def test_add_faces_commits_a_batch_of_sources_at_a_time(tmp_path, monkeypatch):
    from test_bulk import random_faces

    faces = random_faces(1200, 0, prefix="/elsewhere/img")
    with FaceIndex(tmp_path / "faces.db") as ix:
        begun: list[int] = []
        real = type(ix._db).transaction

        def counted(self):
            begun.append(1)
            return real(self)

        monkeypatch.setattr(type(ix._db), "transaction", counted)
        assert ix.add_faces(faces, "stub@1") == 1200
        monkeypatch.undo()
        assert len(ix) == 1200 and ix.info().n_files == 1200
        _, emb = ix.embeddings()
    # was 1,200 transactions (each commit synced to disk: 127 s for 50,000 faces)
    assert len(begun) <= 1200 // 500 + 2
    want = np.stack([f.embedding for f in faces])
    np.testing.assert_allclose(np.sort(emb, axis=0), np.sort(want, axis=0), atol=1e-6)


def test_a_file_that_failed_stays_skipped_after_a_chmod(store, tmp_path):
    """Review: the change time moved by a chmod made a failed file decoded and reported
    again, without --retry-failed."""
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8not a jpeg" * 100)
    stub = StubEmbedder()
    with FaceIndex(store, embedder=stub) as ix:
        assert [o.status for o in ix.add([bad]).files] == ["failed"]
        calls = stub.calls
        os.chmod(bad, 0o600)  # metadata only
        (again,) = ix.add([bad]).files
        assert again.status == "skipped" and again.error  # was "failed", decoded again
        assert stub.calls == calls
        assert [o.status for o in ix.add([bad], retry_failed=True).files] == ["failed"]


def test_a_postgres_opener_does_not_wait_long_to_add_the_column(pg_url, tmp_path):
    """Review: ALTER TABLE waited, without a limit, for every open transaction on files
    (and every new reader waited behind it)."""
    import time

    import psycopg

    a = tmp_path / "a.bmp"
    _bmp(a, 0)
    with FaceIndex(pg_url, embedder=StubEmbedder()) as ix:
        ix.add([a])
    _drop_ctime(pg_url)
    reader = psycopg.connect(pg_url)  # a long search holding the table
    try:
        reader.execute("SELECT COUNT(*) FROM files").fetchone()  # its transaction stays open
        t0 = time.monotonic()
        with FaceIndex(pg_url) as ix:
            assert not ix._db.file_ctime and len(ix) == 1
        assert time.monotonic() - t0 < 10
    finally:
        reader.rollback()
        reader.close()
    with FaceIndex(pg_url) as ix:
        assert ix._db.file_ctime
