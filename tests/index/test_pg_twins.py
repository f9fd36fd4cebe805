"""PostgreSQL: many copies of one photo no longer trap HNSW searches.

Faces whose embedding equals a stored face's are kept out of the HNSW graph (``twin``) and
returned right after it; triggers keep one face of each group in the graph through inserts
and deletes; a database of an earlier exprsim is upgraded by its next writer. Needs a
server (``conftest.py``), skipped without one.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from stub_embedder import StubEmbedder, write_images

from exprsim.index.store import FaceIndex

psycopg = pytest.importorskip("psycopg", reason="psycopg not installed")

#: what a database made before copies were handled looked like
_EARLIER_SCHEMA = (
    "DROP TRIGGER faces_twin_in ON faces",
    "DROP TRIGGER faces_twin_out ON faces",
    "DROP FUNCTION exprsim_twin_in()",
    "DROP FUNCTION exprsim_twin_out()",
    "DROP INDEX faces_embedding_id",
    "DROP INDEX faces_embedding_hnsw",
    "ALTER TABLE faces DROP COLUMN twin",
    "CREATE INDEX faces_embedding_hnsw ON faces USING hnsw (embedding vector_l2_ops) "
    "WITH (m = 16, ef_construction = 64)",
)


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, 16)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _table(emb: np.ndarray, prefix: str) -> pd.DataFrame:
    cols = {f"e{i}": emb[:, i] for i in range(16)}
    sources = [f"/photos/{prefix}{i:05d}.jpg" for i in range(len(emb))]
    return pd.DataFrame({"source": sources, **cols, "model": "stub@1"})


def _copies_and_others(n_copies: int = 500) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return np.repeat(_unit(rng, 1), n_copies, axis=0), _unit(rng, 200)


def _sql(url: str, *statements: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows: list[tuple[object, ...]] = []
        for sql in statements:
            cur = conn.execute(sql)
            rows = cur.fetchall() if cur.description else []
        return rows


def _graph_faces_per_group(url: str) -> list[int]:
    """How many faces of each group of equal embeddings are in the graph (want: 1 each)."""
    rows = _sql(url, "SELECT count(*) FILTER (WHERE NOT twin) FROM faces GROUP BY embedding")
    return sorted({int(r[0]) for r in rows})  # type: ignore[call-overload]


def _own_nearest_missed(ix: FaceIndex, others: np.ndarray) -> int:
    dist, _ = ix.query(others, 10)
    return int((dist[:, 0] > 1e-5).sum())


def test_copies_of_one_vector_leave_every_other_face_findable(pg_url: str) -> None:
    copies, others = _copies_and_others()
    with FaceIndex(pg_url) as ix:
        ix.add_table(_table(copies, "copy"))
        ix.add_table(_table(others, "other"))
        assert ix.info().ann_fresh
        # was: 93 of these 200 not found as their own nearest
        assert _own_nearest_missed(ix, others) == 0
    assert _graph_faces_per_group(pg_url) == [1]
    assert _sql(pg_url, "SELECT count(*) FROM faces WHERE twin")[0][0] == len(copies) - 1


def test_search_with_copies_matches_a_brute_force_ranking(pg_url: str) -> None:
    rng = np.random.default_rng(3)
    base = _unit(rng, 60)
    x = np.concatenate([base, base[:5], base[:5], base[10:12], base[:1]])  # a few copied
    with FaceIndex(pg_url) as ix:
        ix.add_table(_table(x, "x"))
        ids, emb = ix.embeddings()
        queries = np.concatenate([x[[0, 3, 10, 30]], _unit(rng, 4)])
        for k in (1, 3, 8, 80):
            dist, got = ix.query(queries, k)
            for q, d_row, g_row in zip(queries, dist, got, strict=True):
                d = np.linalg.norm(emb - q, axis=1)
                order = np.lexsort((ids, np.round(d, 5)))[:k]  # nearest, ties by id
                n = min(k, len(ids))
                assert g_row[:n].tolist() == ids[order].tolist()
                np.testing.assert_allclose(d_row[:n], d[order], atol=1e-5)
                assert (g_row[n:] == -1).all()


def test_removing_the_face_in_the_graph_puts_one_copy_there(pg_url: str, tmp_path: Path) -> None:
    src = write_images(tmp_path / "a", 2)
    copies = []
    for i in range(4):
        copies.append(tmp_path / f"copy{i}.png")
        shutil.copy(src[0], copies[-1])
    with FaceIndex(pg_url, embedder=StubEmbedder()) as ix:
        ix.add(src)
        ix.add(copies)  # stored by copying the first file's faces (same bytes)
        assert _graph_faces_per_group(pg_url) == [1]
        q = ix.embeddings()[1][:1]
        ix.remove([src[0]])  # held the group's face in the graph
        assert _graph_faces_per_group(pg_url) == [1]
        _, got = ix.query(q, 4)
        assert sorted(r.source for r in ix.get(got[0].tolist())) == sorted(map(str, copies))
        ix.remove(copies[:3])  # three at once, the one in the graph among them
        assert _graph_faces_per_group(pg_url) == [1]
        _, got = ix.query(q, 1)
        assert ix.get([int(got[0, 0])])[0].source == str(copies[3])


def test_a_database_of_an_earlier_exprsim_is_upgraded_by_its_next_writer(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from exprsim.index import pgvector

    copies, others = _copies_and_others()
    with FaceIndex(pg_url) as ix:
        ix.add_table(_table(copies, "copy"))
        ix.add_table(_table(others, "other"))
    _sql(pg_url, *_EARLIER_SCHEMA)
    monkeypatch.setattr(pgvector, "TWINS_RECHECK_S", 0.0)
    with FaceIndex(pg_url, create=False) as reader:  # opened before the upgrade
        assert not reader.info().ann_fresh
        assert _own_nearest_missed(reader, others) > 0  # the trap, as it was
        with FaceIndex(pg_url, embedder=StubEmbedder()) as writer, caplog.at_level(logging.WARNING):
            writer.add(write_images(tmp_path / "new", 1))
        assert "keeping copies of one photo out of the HNSW index" in caplog.text
        assert reader.info().ann_fresh
        assert _own_nearest_missed(reader, others) == 0
    assert _graph_faces_per_group(pg_url) == [1]


def test_index_rebuild_upgrades_a_database_of_an_earlier_exprsim(pg_url: str) -> None:
    from exprsim.cli import main

    copies, others = _copies_and_others(300)
    with FaceIndex(pg_url) as ix:
        ix.add_table(_table(np.concatenate([copies, others]), "p"))
    _sql(pg_url, *_EARLIER_SCHEMA)
    assert main(["-q", "index", "rebuild", "--db", pg_url]) == 0
    assert _graph_faces_per_group(pg_url) == [1]
    with FaceIndex(pg_url, create=False) as ix:
        assert ix.info().ann_fresh
        assert _own_nearest_missed(ix, others) == 0


def test_a_writer_that_may_not_alter_the_tables_adds_and_leaves_the_upgrade(
    pg_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from urllib.parse import urlsplit, urlunsplit

    with FaceIndex(pg_url) as ix:
        ix.add_table(_table(_copies_and_others(50)[0], "copy"))
    _sql(pg_url, *_EARLIER_SCHEMA)
    db = urlsplit(pg_url).path.lstrip("/")
    _sql(
        pg_url,
        "DROP ROLE IF EXISTS rowwriter",
        "CREATE ROLE rowwriter LOGIN",
        f"GRANT CONNECT ON DATABASE {db} TO rowwriter",
        "GRANT USAGE ON SCHEMA public TO rowwriter",
        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO rowwriter",
        "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO rowwriter",
    )
    parts = urlsplit(pg_url)
    url = urlunsplit(parts._replace(netloc="rowwriter@" + parts.netloc.rsplit("@", 1)[-1]))
    try:
        with FaceIndex(url, embedder=StubEmbedder()) as ix, caplog.at_level(logging.WARNING):
            report = ix.add(write_images(tmp_path / "new", 2))  # its upgrade fails, not the add
            assert len(ix) == 52 and not ix.info().ann_fresh
        assert report.added_faces == 2
        assert "`exprsim index rebuild --db URI` by the tables' owner" in caplog.text
    finally:
        _sql(pg_url, "DROP OWNED BY rowwriter", "DROP ROLE rowwriter")


def test_copies_added_while_their_original_is_removed_keep_one_in_the_graph(
    pg_url: str, tmp_path: Path
) -> None:
    import threading
    import time

    originals = write_images(tmp_path / "b", 3)
    copies = []
    for src in originals:
        copies.append(tmp_path / "e" / src.name)
        copies[-1].parent.mkdir(exist_ok=True)
        shutil.copy(src, copies[-1])
    with FaceIndex(pg_url, embedder=StubEmbedder()) as ix:
        ix.add(originals)
        q = ix.embeddings()[1]
    with psycopg.connect(pg_url) as remover:  # `index remove b` in another process
        remover.execute("DELETE FROM files WHERE path LIKE %s", (f"{tmp_path / 'b'}/%",))
        added: list[object] = []

        def add_copies() -> None:
            with FaceIndex(pg_url, embedder=StubEmbedder()) as other:
                added.append(other.add(copies))

        adder = threading.Thread(target=add_copies)
        adder.start()
        time.sleep(1.0)  # the copies' inserts wait for the removal's transaction
        remover.commit()
        adder.join(60)
    assert added and not adder.is_alive()
    # was: all 3 groups with no face in the graph, and searches missed the copies
    assert _graph_faces_per_group(pg_url) == [1]
    with FaceIndex(pg_url, create=False) as ix:
        dist, got = ix.query(q, 1)
        assert (dist[:, 0] < 1e-5).all()
        assert sorted(r.source for r in ix.get(got[:, 0].tolist())) == sorted(map(str, copies))


def _add_file(conn: object, path: str, embedding: list[float]) -> None:
    row = conn.execute(  # type: ignore[attr-defined]
        "INSERT INTO files (path, status, n_faces, added_at) VALUES (%s, 'done', 1, 0) "
        "RETURNING id",
        (path,),
    ).fetchone()
    conn.execute(  # type: ignore[attr-defined]
        "INSERT INTO faces (file_id, face_index, embedding, model) "
        "VALUES (%s, 0, %s::vector, 'stub@1')",
        (row[0], str(embedding)),
    )


def test_two_removes_at_once_keep_one_copy_in_the_graph(pg_url: str) -> None:
    """Audit: a remove of the face in the graph and a remove of one of its copies at once
    left the other copies all marked (none in the graph, never found); the copy's delete
    took no lock, so the first remove promoted the copy being deleted."""
    import threading
    import time

    FaceIndex(pg_url).close()  # exprsim's tables and triggers
    e = [1.0] + [0.0] * 15
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for path in ("/a/h.jpg", "/b/t1.jpg", "/c/t2.jpg"):
            _add_file(conn, path, e)
        _add_file(conn, "/d/other.jpg", [0.0, 1.0] + [0.0] * 14)
    with psycopg.connect(pg_url) as b:  # `index remove /b`, its transaction still open
        b.execute("DELETE FROM files WHERE path = '/b/t1.jpg'")

        def remove_a() -> None:  # `index remove /a` meanwhile
            with psycopg.connect(pg_url, autocommit=True) as a:
                a.execute("DELETE FROM files WHERE path = '/a/h.jpg'")

        other = threading.Thread(target=remove_a)
        other.start()
        time.sleep(1.0)
        b.commit()
        other.join(60)
    assert not other.is_alive()
    assert _graph_faces_per_group(pg_url) == [1]  # was: [0, 1]
    with FaceIndex(pg_url, create=False) as ix:
        dist, got = ix.query(np.array(e, np.float32), 2)
        assert dist[0, 0] < 1e-5 and ix.get(int(got[0, 0]))[0].source == "/c/t2.jpg"


def test_a_database_without_the_delete_lock_trigger_gets_it_without_a_new_graph(
    pg_url: str, tmp_path: Path
) -> None:
    copies, others = _copies_and_others(50)
    with FaceIndex(pg_url) as ix:
        ix.add_table(_table(np.concatenate([copies, others]), "p"))
    _sql(pg_url, "DROP TRIGGER faces_twin_lock ON faces")  # as c80a423 made them
    before = _sql(pg_url, "SELECT 'faces_embedding_hnsw'::regclass::oid")
    with FaceIndex(pg_url, embedder=StubEmbedder()) as writer:
        writer.add(write_images(tmp_path / "new", 1))
    names = _sql(pg_url, "SELECT tgname FROM pg_trigger WHERE tgname LIKE 'faces_twin%'")
    assert sorted(str(r[0]) for r in names) == [
        "faces_twin_in", "faces_twin_lock", "faces_twin_out"
    ]  # fmt: skip
    assert _sql(pg_url, "SELECT 'faces_embedding_hnsw'::regclass::oid") == before  # kept
    assert _graph_faces_per_group(pg_url) == [1]
