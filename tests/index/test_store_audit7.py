"""Audit 7 (storage, concurrency, crash consistency), store side: findings 1-9 of
/tmp/audit7/store.md and its minor API notes. Each test failed before its fix (see the
session's report for the few that guard behaviour that already held)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from stub_embedder import StubEmbedder, write_images

from exprsim.errors import ExprsimError
from exprsim.index import ann
from exprsim.index.store import FaceIndex


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def indexed(tmp_path: Path, name: str = "f.db", n: int = 3, seed: int = 0) -> Path:
    """An index of ``n`` stub images with a saved ANN cache."""
    paths = write_images(tmp_path / f"imgs_{name}", n, seed=seed)
    db = tmp_path / name
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        ix.add(paths)
        ix.refresh_ann()
    return db


def finds_itself(ix: FaceIndex) -> bool:
    """Whether every stored face's own embedding finds it first."""
    ids, emb = ix.embeddings()
    _, nn = ix.query(emb, k=1)
    return bool(nn[:, 0].tolist() == ids.tolist())


@contextlib.contextmanager
def waits_at_most(monkeypatch: pytest.MonkeyPatch, seconds: float) -> Iterator[None]:
    """SQLite connections made inside wait at most ``seconds`` for a lock (30 s in use)."""
    real = sqlite3.connect

    def connect(*args, **kwargs):
        kwargs["timeout"] = min(float(kwargs.get("timeout", 5.0)), seconds)
        return real(*args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", connect)
    yield
    monkeypatch.setattr(sqlite3, "connect", real)


@contextlib.contextmanager
def writer_holding(db: Path) -> Iterator[None]:
    """Another connection holding a write transaction on ``db`` (a bulk load, say)."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO meta VALUES ('x', 'y')")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


# ----------------------------------------------------------------------------- 1


def test_a_side_file_name_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    db = indexed(tmp_path)
    for name in ("f.db-wal", "f.db-shm", "f.db.ann", "f.db.lock", "g.db.ann", "g.db-journal"):
        side = tmp_path / name
        before = digest(side) if side.exists() else None
        with pytest.raises(ExprsimError, match="choose a name not ending in"):
            FaceIndex(side, embedder=StubEmbedder())
        assert (digest(side) if side.exists() else None) == before  # no file made
    with FaceIndex(db) as ix:
        assert len(ix) == 3


def test_an_index_whose_side_name_holds_a_database_is_refused(tmp_path: Path) -> None:
    old = indexed(tmp_path, "old.db")
    legacy = tmp_path / "g.db.ann"  # an index made under that name before the fix
    shutil.copy(old, legacy)
    with FaceIndex(legacy) as ix:  # its base does not exist: it still opens
        assert len(ix) == 3
    before = digest(legacy)
    with pytest.raises(ExprsimError, match="a SQLite database of its own"):
        FaceIndex(tmp_path / "g.db", embedder=StubEmbedder())
    assert digest(legacy) == before and not (tmp_path / "g.db").exists()


# ----------------------------------------------------------------------------- 2


def test_another_indexs_cache_copied_in_is_not_used(tmp_path: Path) -> None:
    a = indexed(tmp_path, "a.db", n=4, seed=1)
    b = indexed(tmp_path, "b.db", n=6, seed=2)
    shutil.copy(f"{b}.ann", f"{a}.ann")  # the stamp a.db.ann.json stays
    with FaceIndex(a) as ix:
        assert ix.info().ann_fresh is False  # was True
        assert finds_itself(ix)  # was: b's faces, at b's distances


def test_a_cache_of_another_dimension_is_rebuilt(tmp_path: Path) -> None:
    db = indexed(tmp_path)
    rng = np.random.default_rng(0)
    ann.ExactIndex(rng.normal(size=(32, 8)).astype(np.float32)).save(f"{db}.ann")
    with FaceIndex(db) as ix:
        assert ix.info().ann_fresh is False
        assert finds_itself(ix)  # was: "queries must be (Q, 8)" on every search


def test_an_older_cache_under_a_newer_stamp_is_not_fresh(tmp_path: Path) -> None:
    """Two writers' saves interleaved: one's index file with the other's stamp."""
    paths = write_images(tmp_path / "imgs", 6)
    db = tmp_path / "f.db"
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        ix.add(paths[:3])
        ix.refresh_ann()
        older = Path(f"{db}.ann").read_bytes()
        ix.add(paths[3:])
        ix.refresh_ann()
    Path(f"{db}.ann").write_bytes(older)
    with FaceIndex(db) as ix:
        assert ix.info().ann_fresh is False  # was True
        assert len(ix) == 6 and finds_itself(ix)  # was: faces 4-6 never found


def test_the_stamp_is_saved_inside_the_cache(tmp_path: Path) -> None:
    db = indexed(tmp_path)
    index, stamp = ann.load_cache(f"{db}.ann")
    assert stamp is not None and stamp.count == len(index) == 3
    assert ann.AnnStamp.load(f"{db}.ann.json") == stamp  # the copy for people


# ----------------------------------------------------------------------------- 3


def test_a_copy_whose_original_is_removed_meanwhile_is_embedded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (orig,) = write_images(tmp_path / "imgs", 1)
    copy = tmp_path / "copy.png"
    shutil.copy(orig, copy)
    db = tmp_path / "f.db"
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        ix.add([orig])
    real = FaceIndex._store_file

    def late(self, *args, **kwargs):
        if kwargs.get("copy_of") is not None:  # another process removes the original now
            with FaceIndex(db) as other:
                assert other.remove([orig]) == 1
        return real(self, *args, **kwargs)

    monkeypatch.setattr(FaceIndex, "_store_file", late)
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        (out,) = ix.add([copy]).files
        frame = ix.files()
        assert frame["n_faces"].tolist() == [1] and len(ix) == 1  # was: n_faces 1, no face
        assert out.status == "added" and out.n_faces == 1
        assert [r.source for r in ix.records()] == [str(copy.resolve())]


# ----------------------------------------------------------------------------- 4


def _newer_schema(db: Path) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema'")
    conn.execute("DROP TRIGGER faces_log_ins")
    conn.execute("DROP TABLE identity")
    conn.execute("CREATE TABLE faces_v2 (x)")
    conn.close()


def _other_program(db: Path) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("CREATE TABLE files (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("CREATE TABLE faces (id INTEGER PRIMARY KEY, file_id INT, person TEXT)")
    conn.execute("INSERT INTO files (name) VALUES ('holiday.jpg')")
    conn.close()


@pytest.mark.parametrize(
    ("make", "match"),
    [(_newer_schema, "made by a newer exprsim"), (_other_program, "lacks the columns")],
)
def test_a_refused_database_is_left_byte_identical(tmp_path: Path, make, match: str) -> None:
    db = indexed(tmp_path) if make is _newer_schema else tmp_path / "other.db"
    make(db)
    before = digest(db)
    with pytest.raises(ExprsimError) as refused:
        FaceIndex(db, embedder=StubEmbedder())
    assert digest(db) == before  # was: WAL mode, tables and triggers created
    assert not Path(f"{db}-wal").exists()
    assert re.search(match, str(refused.value))


def test_an_index_of_an_earlier_exprsim_is_set_up(tmp_path: Path) -> None:
    db = indexed(tmp_path)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("DROP TABLE identity")
    conn.close()
    with FaceIndex(db) as ix:
        assert len(ix) == 3 and ix.identity_descriptors([1]) == {}
    mode = sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


# ----------------------------------------------------------------------------- 5


def test_reads_do_not_wait_for_a_writer(tmp_path: Path, monkeypatch) -> None:
    db = indexed(tmp_path)
    with FaceIndex(db) as ix:
        ids, emb = ix.embeddings()
    with waits_at_most(monkeypatch, 1.0), writer_holding(db):
        t0 = time.perf_counter()
        with FaceIndex(db) as ix:  # was: "database is locked" (opening wrote to meta)
            assert ix.info().n_faces == 3 and ix.info().ann_fresh
            assert ix.query(emb, k=1)[1][:, 0].tolist() == ids.tolist()
            assert len(ix.records()) == 3 and ix.tag_references() == []
        Path(f"{db}.ann").unlink()  # a stale cache: rebuilt in memory, the log kept
        with FaceIndex(db) as ix:
            assert ix.query(emb, k=1)[1][:, 0].tolist() == ids.tolist()
        assert time.perf_counter() - t0 < 1.0


def test_writes_still_wait_for_a_writer(tmp_path: Path, monkeypatch) -> None:
    db = indexed(tmp_path)
    with (
        waits_at_most(monkeypatch, 0.3),
        writer_holding(db),
        FaceIndex(db) as ix,
        pytest.raises(sqlite3.OperationalError, match="locked"),
    ):
        ix.set_label([1], "x")


# ----------------------------------------------------------------------------- 6


@pytest.mark.parametrize("backend", ["exact", "faiss-ivf", "faiss-hnsw"])
def test_k_may_be_a_numpy_integer_on_every_backend(tmp_path: Path, backend: str) -> None:
    if backend != "exact":
        pytest.importorskip("faiss")
    paths = write_images(tmp_path / "imgs", 5)
    with FaceIndex(tmp_path / "f.db", embedder=StubEmbedder(), ann_backend=backend) as ix:
        ix.add(paths)
        _, nn = ix.query(np.ones(16, np.float32) / 4, np.int64(3))  # was: SWIG TypeError
        assert nn.shape == (1, 3) and (nn >= 0).all()
        _, nn = ix._ann_index().search(np.ones((1, 16), np.float32) / 4, np.int64(2))
        assert nn.shape == (1, 2)


def test_k_may_be_a_numpy_integer_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    paths = write_images(tmp_path / "imgs", 3)
    with FaceIndex(pg_url, embedder=StubEmbedder()) as ix:
        ix.add(paths)
        assert ix.query(np.ones(16, np.float32) / 4, np.int64(2))[1].shape == (1, 2)


# ----------------------------------------------------------------------------- 7


def test_an_explicit_backend_given_to_refresh_is_kept(tmp_path: Path) -> None:
    pytest.importorskip("faiss")
    paths = write_images(tmp_path / "imgs", 4)
    db = tmp_path / "f.db"
    with FaceIndex(db, embedder=StubEmbedder(), ann_backend="faiss-hnsw") as ix:
        ix.add(paths[:2])
        assert ix.refresh_ann("faiss-hnsw").backend == "faiss-hnsw"  # `index add --ann`
    with FaceIndex(db, embedder=StubEmbedder()) as ix:  # a plain `index add`
        ix.add(paths[2:])
        assert ix.refresh_ann("auto").backend == "faiss-hnsw"  # was: retrained as exact
        assert ix.info().ann_backend == "faiss-hnsw"


def test_postgresql_refuses_a_faiss_backend(pg_url: str) -> None:
    from exprsim.cli import main

    with FaceIndex(pg_url) as ix:
        with pytest.raises(ExprsimError, match="pgvector HNSW"):
            ix.rebuild_ann("faiss-ivf")  # was: "rebuilt pgvector-hnsw index", exit 0
        with pytest.raises(ExprsimError, match="pgvector HNSW"):
            ix.refresh_ann("faiss-hnsw")
        assert ix.rebuild_ann("auto").backend == "pgvector-hnsw"
    with pytest.raises(ExprsimError, match="pgvector HNSW"):
        FaceIndex(pg_url, ann_backend="exact")
    assert main(["-q", "index", "rebuild", "--ann", "faiss-ivf", "--db", pg_url]) == 2


# ----------------------------------------------------------------------------- 8


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(proc.stdout)


def test_temporary_files_of_killed_writers_are_swept(tmp_path: Path) -> None:
    db = indexed(tmp_path)
    dead = _dead_pid()
    left = [tmp_path / f".f.db.ann.{dead}.1401.tmp", tmp_path / f".f.db.ann.json.{dead}.77.tmp"]
    mine = tmp_path / f".f.db.ann.{os.getpid()}.1.tmp"  # a live writer's: kept
    other = tmp_path / f".g.db.ann.{dead}.1.tmp"  # another file's: kept
    for p in (*left, mine, other):
        p.write_bytes(b"x" * 100)
    with FaceIndex(db) as ix:
        ix.rebuild_ann()
    assert not any(p.exists() for p in left)  # was: kept for good
    assert mine.exists() and other.exists()


# ----------------------------------------------------------------------------- 9


def test_face_log_is_trimmed_by_catch_ups(tmp_path: Path) -> None:
    paths = write_images(tmp_path / "A", 8)
    with FaceIndex(tmp_path / "f.db", embedder=StubEmbedder()) as ix:
        ix.add(paths)
        ix.refresh_ann()
        for _ in range(3):
            ix.remove([tmp_path / "A"])
            ix.refresh_ann()
            ix.add(paths)
            ix.refresh_ann()
        assert ix._db.execute("SELECT COUNT(*) FROM face_log").fetchone()[0] == 0  # was 48
        assert finds_itself(ix)


# ----------------------------------------------------------------------------- minor notes


def test_odd_ids_and_tags_are_one_line_errors_or_no_face(tmp_path: Path) -> None:
    db = indexed(tmp_path)
    with FaceIndex(db) as ix:
        assert ix.get([2**70]) == [] and ix.crop(2**70) is None  # was OverflowError
        ix.set_label([2**70], "x")
        with pytest.raises(ExprsimError, match="non-empty string"):
            ix.add_tags([1], "")  # was stored
        with pytest.raises(ExprsimError, match="non-empty string"):
            ix.add_tags([1], [5])  # was TypeError
        with pytest.raises(ExprsimError, match="must be an integer"):
            ix.get(["x"])
        assert [r.tags for r in ix.records()] == [(), (), ()]


def test_an_unknown_ann_backend_is_refused_when_opening(tmp_path: Path) -> None:
    with pytest.raises(ExprsimError, match="unknown ANN backend 'p2'"):
        FaceIndex(tmp_path / "f.db", ann_backend="p2")  # was: failed at the first query
