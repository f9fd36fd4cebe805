"""Audit 11 (a wheel without extras), store side: finding 1 (a faiss backend asked for
without faiss was recorded before the build failed, and every later search failed) and the
last note of finding 5 (a refused ``ann_backend`` left an empty database file). Each test
failed before its fix. "faiss not installed" is simulated by making ``import faiss`` fail."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest
from stub_embedder import StubEmbedder, write_images

from exprsim.errors import BackendUnavailableError, ExprsimError
from exprsim.index import ann
from exprsim.index.store import FaceIndex


@pytest.fixture
def no_faiss(monkeypatch: pytest.MonkeyPatch) -> None:
    """``import faiss`` fails, as where faiss-cpu is not installed."""
    monkeypatch.setitem(sys.modules, "faiss", None)
    assert not ann.faiss_available()


def indexed(tmp_path: Path, n: int = 4, backend: str = "auto") -> Path:
    """An index of ``n`` stub images with a saved ANN cache (``backend``: recorded)."""
    db = tmp_path / "f.db"
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        ix.add(write_images(tmp_path / "imgs", n))
        ix.rebuild_ann(backend)
    return db


def finds_itself(ix: FaceIndex) -> bool:
    ids, emb = ix.embeddings()
    return bool(ix.query(emb, k=1)[1][:, 0].tolist() == ids.tolist())


def recorded(db: Path) -> str:
    """The ANN backend recorded in the database's ``meta`` (``"auto"``: none)."""
    import sqlite3

    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT value FROM meta WHERE key = 'ann_backend'").fetchone()
    return "auto" if row is None else str(row[0])


# ----------------------------------------------------------------------------- 1


@pytest.mark.parametrize("backend", ["faiss-hnsw", "faiss-ivf"])
def test_a_faiss_rebuild_without_faiss_leaves_the_index_searching(
    tmp_path: Path, no_faiss: None, backend: str
) -> None:
    db = indexed(tmp_path)
    with FaceIndex(db) as ix:
        for call in (ix.rebuild_ann, ix.refresh_ann):
            with pytest.raises(BackendUnavailableError, match="faiss"):
                call(backend)
            assert ix.ann_backend == "auto" and finds_itself(ix)  # was: faiss error
        assert ix.info().ann_choice == "auto" and ix.info().ann_fresh
    assert recorded(db) == "auto"  # was: the faiss backend, recorded before the build
    with FaceIndex(db) as ix:
        assert finds_itself(ix)


def test_a_faiss_backend_without_faiss_is_refused_before_anything_is_made(
    tmp_path: Path, no_faiss: None
) -> None:
    db = tmp_path / "new.db"
    with pytest.raises(BackendUnavailableError, match=r"faiss-ivf needs faiss.*exprsim\[ann\]"):
        FaceIndex(db, embedder=StubEmbedder(), ann_backend="faiss-ivf")  # was: accepted
    assert not list(tmp_path.iterdir())  # no database file


def test_check_ann_backend_refuses_what_an_index_could_not_use(no_faiss: None) -> None:
    """The check a command line makes before it loads a model."""
    from exprsim.index.store import check_ann_backend

    for ok in (None, "auto", "exact"):
        check_ann_backend(ok)
    check_ann_backend("auto", "postgresql://u:secret@localhost/db")
    with pytest.raises(BackendUnavailableError, match="faiss-hnsw needs faiss"):
        check_ann_backend("faiss-hnsw")
    with pytest.raises(ExprsimError, match="unknown ANN backend 'bogus'"):
        check_ann_backend("bogus")
    with pytest.raises(ExprsimError, match="pgvector HNSW") as err:
        check_ann_backend("exact", "postgresql://u:secret@localhost/db")
    assert "secret" not in str(err.value)


def test_a_failed_build_records_no_choice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = indexed(tmp_path)

    def broken(*args: object, **kwargs: object) -> None:
        raise MemoryError("no room")

    with FaceIndex(db) as ix:
        monkeypatch.setattr(ann, "build_index", broken)
        for call in (ix.rebuild_ann, ix.refresh_ann):
            ix._ann = None  # nothing in memory: the refresh builds too
            ix.ann_path.unlink(missing_ok=True)
            with pytest.raises(MemoryError):
                call("exact")
            assert ix.ann_backend == "auto"
    assert recorded(db) == "auto"  # was: exact, recorded before the build


def test_a_recorded_faiss_backend_searches_exactly_where_faiss_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An index made where faiss is installed, opened where it is not: exact search, one
    warning saying how to record another choice (was: every search failed)."""
    pytest.importorskip("faiss")
    db = indexed(tmp_path, backend="faiss-hnsw")
    monkeypatch.setitem(sys.modules, "faiss", None)
    caplog.set_level(logging.INFO, "exprsim.index.store")
    with FaceIndex(db) as ix:
        info = ix.info()
        assert (info.ann_choice, info.ann_backend, info.ann_fresh) == (
            "faiss-hnsw",
            "faiss-hnsw",
            False,  # was: True, though no search here can use it
        )
        assert finds_itself(ix) and finds_itself(ix)
        info = ix.info()
        assert (info.ann_choice, info.ann_backend, info.ann_fresh) == ("faiss-hnsw", "exact", True)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "searching exactly" in warnings[0]
    assert f"exprsim index rebuild --db {db} --ann exact" in warnings[0]
    assert not any("not built from this database" in r.getMessage() for r in caplog.records)
    assert recorded(db) == "faiss-hnsw"  # kept for a machine with faiss


def test_info_reports_the_recorded_choice(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = indexed(tmp_path, backend="exact")
    with FaceIndex(db) as ix:
        assert ix.info().ann_choice == "exact" and ix.info().to_dict()["ann_choice"] == "exact"
        ix.rebuild_ann("auto")
        assert ix.info().ann_choice == "auto"
    if not ann.faiss_available():
        return
    with FaceIndex(db) as ix:
        ix.rebuild_ann("faiss-hnsw")
    caplog.set_level(logging.INFO, "exprsim.index.store")
    with FaceIndex(db, ann_backend="exact") as ix:  # the cache holds another backend
        assert not ix.info().ann_fresh  # was: fresh
        assert finds_itself(ix) and ix.info().ann_fresh
    why = [r.getMessage() for r in caplog.records if "rebuilding" in r.getMessage()]
    assert why and "built as faiss-hnsw, not exact" in why[0]  # was: not built from this database


def test_refresh_with_another_backend_rebuilds_what_is_in_memory(tmp_path: Path) -> None:
    pytest.importorskip("faiss")
    db = indexed(tmp_path)
    with FaceIndex(db) as ix:
        assert finds_itself(ix)  # exact search, in memory
        assert ix.refresh_ann("faiss-hnsw").backend == "faiss-hnsw"  # was: exact
        assert ix.info().ann_backend == "faiss-hnsw" and ix.info().ann_fresh
        assert finds_itself(ix)
    assert recorded(db) == "faiss-hnsw"


# ----------------------------------------------------------------------------- 5


@pytest.mark.parametrize("backend", ["bogus", 7])
def test_a_refused_backend_leaves_no_database_file(tmp_path: Path, backend: object) -> None:
    db = tmp_path / "c.db"
    with pytest.raises(ExprsimError, match="unknown ANN backend"):
        FaceIndex(db, ann_backend=backend)  # type: ignore[arg-type]
    assert not list(tmp_path.iterdir())  # was: an empty 53 KB c.db


def test_postgresql_refuses_a_backend_before_connecting() -> None:
    """Checked before any connection is made (was: tables set up, or a connection error,
    first); the message has no password."""
    url = "postgresql://u:secret@127.0.0.1:1/nowhere"
    with pytest.raises(ExprsimError, match="pgvector HNSW") as err:
        FaceIndex(url, ann_backend="exact")
    assert "secret" not in str(err.value)


def test_the_query_keeps_working_with_numpy_queries(tmp_path: Path, no_faiss: None) -> None:
    """Exact search stays the default without faiss (a guard, not a finding)."""
    db = indexed(tmp_path, n=3)
    with FaceIndex(db) as ix:
        _, nn = ix.query(np.ones(16, np.float32) / 4, k=2)
        assert nn.shape == (1, 2) and (nn >= 0).all() and ix.info().ann_backend == "exact"
