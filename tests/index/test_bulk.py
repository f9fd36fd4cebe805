"""Bulk loads (``add_table``), incremental ANN catch-up and the drift rule, PostgreSQL specifics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from stub_embedder import StubEmbedder

from exprsim.errors import ExprsimError
from exprsim.index import ann
from exprsim.index.store import FaceIndex, ModelMismatchError


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, 16)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def embed_table(n_sources: int, seed: int = 0, faces_per: int = 1, **extra) -> pd.DataFrame:
    """A table shaped like ``exprsim embed -o x.parquet``."""
    rng = np.random.default_rng(seed)
    n = n_sources * faces_per
    emb = unit(rng, n)
    rows = []
    for r in range(n):
        row = {
            "source": f"/photos/{seed}/img_{r // faces_per:05d}.jpg",
            "face": r % faces_per,
            "x1": 1.0,
            "y1": 2.0,
            "x2": 30.0,
            "y2": 40.0,
            "score": 0.9,
            "landmarks": [[1.0, 2.0]] * 5,
            "detector": "stub",
            "sharpness": 10.0,
            "yaw": 0.0,
            "pitch": 0.0,
            "roll": 0.0,
            "quality_ok": True,
        }
        row.update({f"e{i}": float(v) for i, v in enumerate(emb[r])})
        row["model"] = "stub@1"
        rows.append(row | extra)
    return pd.DataFrame(rows)


def random_faces(n: int, seed: int, prefix: str = "src") -> list:
    proto = StubEmbedder().embed_images([np.full((8, 8, 3), 9, np.uint8)])[0]
    return [
        type(proto)(f"{prefix}{i}", 0, proto.aligned, e)
        for i, e in enumerate(unit(np.random.default_rng(seed), n))
    ]


def test_add_table_upserts(store: str | Path, tmp_path: Path) -> None:
    table = embed_table(30, faces_per=2)
    with FaceIndex(store) as index:
        rep = index.add_table(table)
        assert (rep.files_added, rep.faces, rep.model) == (30, 60, "stub@1")
        assert len(index) == 60 and index.info().n_files == 30 and index.model == "stub@1"
        again = index.add_table(table)  # no sha256 column: stored sources are skipped
        assert (again.files_skipped, again.faces) == (30, 0) and len(index) == 60
        forced = index.add_table(table.iloc[:4], replace=True)
        assert (forced.files_replaced, forced.faces) == (2, 4) and len(index) == 60
        recs = {(r.source, r.face_index): r for r in index.records()}
        for row in table.itertuples():
            r = recs[(row.source, row.face)]
            emb = np.array([getattr(row, f"e{i}") for i in range(16)], np.float32)
            np.testing.assert_allclose(r.embedding, emb, atol=1e-6)
            assert r.landmarks.shape == (5, 2) and r.quality_ok and r.detector == "stub"
        ids, emb = index.embeddings()
        _, nn = index.query(emb[:5], k=1)
        assert nn[:, 0].tolist() == ids[:5].tolist()
        # a later `add` of photos gets fresh ids after the explicit ones of the bulk load
        index.add_faces(random_faces(1, 5), model="stub@1")
        assert len(index) == 61
        with pytest.raises(ModelMismatchError):
            index.add_table(embed_table(2, seed=3, model="other@2"))
        with pytest.raises(ExprsimError, match="lacks the columns"):
            index.add_table(table.drop(columns=["e3"]))


def test_add_table_keyed_by_hash(store: str | Path) -> None:
    table = embed_table(10)
    table["sha256"] = [f"h{i}" for i in range(10)]
    with FaceIndex(store) as index:
        index.add_table(table)
        changed = table.copy()
        changed.loc[:2, "sha256"] = ["x0", "x1", "x2"]
        changed.loc[:2, "e0"] = 0.5
        rep = index.add_table(changed)
        assert (rep.files_replaced, rep.files_skipped, rep.faces) == (3, 7, 3)
        assert len(index) == 10
        by_src = {r.source: r for r in index.records()}
        assert by_src[table.source[0]].sha256 == "x0"
        row = changed.loc[0, [f"e{i}" for i in range(16)]].to_numpy(float)
        # the replaced embedding, stored on the unit sphere (e0 = 0.5 lengthened it)
        want = row / np.linalg.norm(row)
        np.testing.assert_allclose(by_src[table.source[0]].embedding, want, rtol=1e-6)


# ----------------------------------------------------------------------------- incremental ANN


@pytest.fixture
def counted_builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    builds: list[str] = []
    real = ann.build_index

    def counting(vectors, ids=None, backend="auto", **kw):
        builds.append(backend)
        return real(vectors, ids, backend=backend, **kw)

    monkeypatch.setattr(ann, "build_index", counting)
    return builds


@pytest.mark.parametrize("backend", ["faiss-ivf", "exact"])
def test_incremental_ann_catches_up(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, counted_builds: list[str]
) -> None:
    if backend == "faiss-ivf":
        pytest.importorskip("faiss")
    monkeypatch.setattr(ann, "EXACT_MAX", 100)
    db = tmp_path / "faces.db"
    with FaceIndex(db, ann_backend=backend) as index:
        index.add_table(embed_table(400))
        stamp = index.refresh_ann()
        assert (stamp.backend, stamp.count, len(counted_builds)) == (backend, 400, 1)
    new = random_faces(20, seed=7, prefix="new")
    with FaceIndex(db, ann_backend=backend) as index:  # another process: cache from disk
        index.add_faces(new, model="stub@1")
        assert not index.info().ann_fresh
        dist, nn = index.query(np.stack([f.embedding for f in new]), k=1)
        assert len(counted_builds) == 1, "caught up, not rebuilt"
        assert index.info().ann_fresh and np.allclose(dist[:, 0], 0, atol=1e-3)
        new_ids = {r.source: r.id for r in index.records() if r.source.startswith("new")}
        assert nn[:, 0].tolist() == [new_ids[f"new{i}"] for i in range(20)]
        # removal (IVF and exact can drop vectors) is caught up too
        index._db.execute("DELETE FROM files WHERE path = 'new0'")
        index._bump(index._db)
        _, nn = index.query(new[0].embedding, k=1)
        assert nn[0, 0] != new_ids["new0"] and len(counted_builds) == 1
        assert ann.AnnStamp.load(index.ann_stamp_path).count == 419
    with FaceIndex(db, ann_backend=backend) as index:  # drift: size > 2x the trained size
        index.add_table(embed_table(400, seed=1))
        stamp = index.refresh_ann()
        if backend == "faiss-ivf":  # IVF centroids are refitted ...
            assert len(counted_builds) == 2 and stamp.trained_count == 819
        else:  # ... exact search has nothing to refit
            assert len(counted_builds) == 1 and stamp.count == 819


def test_hnsw_cache_rebuilds_after_removal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, counted_builds: list[str]
) -> None:
    pytest.importorskip("faiss")
    with FaceIndex(tmp_path / "faces.db", ann_backend="faiss-hnsw") as index:
        index.add_table(embed_table(50))
        index.refresh_ann()
        index.add_faces(random_faces(3, seed=2), model="stub@1")
        index.refresh_ann()
        assert len(counted_builds) == 1  # HNSW takes adds
        index._db.execute("DELETE FROM files WHERE path = 'src0'")
        index._bump(index._db)
        index.refresh_ann()
        assert len(counted_builds) == 2  # ... but not removals


def test_drift_rule_imbalance() -> None:
    pytest.importorskip("faiss")
    rng = np.random.default_rng(0)
    x = unit(rng, 4000)
    index = ann.build_faiss_ivf(x, np.arange(4000), nlist=40)
    imb = index.imbalance()
    stamp = ann.AnnStamp(1, "m", "faiss-ivf", 4000, 0, 4000, imb)
    assert ann.needs_retrain(stamp, index, "faiss-ivf", 4000) == ""
    assert "trained on" in ann.needs_retrain(stamp, index, "faiss-ivf", 8001)
    assert "exact" in ann.needs_retrain(stamp, index, "auto", 10)
    # 3000 new vectors all near one point crowd one list
    spot = x[0] + 0.01 * rng.standard_normal((3000, 16)).astype(np.float32)
    index.add(spot, np.arange(4000, 7000))
    assert "imbalance" in ann.needs_retrain(stamp, index, "faiss-ivf", 7000)


# ----------------------------------------------------------------------------- PostgreSQL


def test_pg_uri_forms_and_hnsw(pg_url: str) -> None:
    from urllib.parse import quote, urlsplit

    from exprsim.index.pgvector import HNSW_INDEX, redact

    with FaceIndex(pg_url) as index:
        index.add_table(embed_table(5))
        assert index.backend == "postgresql"
        info = index.info()
        assert (info.ann_backend, info.ann_fresh, info.n_faces) == ("pgvector-hnsw", True, 5)
        names = [r[0] for r in index._db.execute("SELECT indexname FROM pg_indexes").fetchall()]
        assert HNSW_INDEX in names
    parts = urlsplit(pg_url)
    host = dict(p.split("=", 1) for p in parts.query.split("&") if p).get("host")
    if host and host.startswith("/"):  # the same Unix socket, spelled as an encoded host
        user = parts.username or ""
        other = f"postgresql://{user}@{quote(host, safe='')}{parts.path}"
        with FaceIndex(other) as index:
            assert len(index) == 5
    assert redact("postgresql://bob:s3cret@db.example:5432/faces") == (
        "postgresql://bob:***@db.example:5432/faces"
    )
    with pytest.raises(ExprsimError, match="cannot connect"):
        FaceIndex(pg_url.replace(parts.path, "/no_such_database_here"))


def test_pg_bulk_load_rebuilds_hnsw_once(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from exprsim.index import pgvector

    monkeypatch.setattr(pgvector, "BULK_REBUILD_MIN", 10)
    builds: list[float] = []
    real = pgvector.PostgresBackend.build_vector_index

    def counting(self, *a, **kw):
        builds.append(real(self, *a, **kw))
        return builds[-1]

    monkeypatch.setattr(pgvector.PostgresBackend, "build_vector_index", counting)
    table = embed_table(300)
    with FaceIndex(pg_url) as index:
        index.add_table(table)
        assert len(builds) == 1
        index.add_table(embed_table(5, seed=2))  # small: rows join the graph, no rebuild
        assert len(builds) == 1
        ids, emb = index.embeddings()
        exact = ann.ExactIndex(emb, ids)
        _, want = exact.search(emb[:50], 10)
        _, got = index.query(emb[:50], 10)
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, want, strict=True)])
        assert recall >= 0.95


def test_load_parquet_shards(store: str | Path, tmp_path: Path) -> None:
    from exprsim.scale import load_parquet

    folder = tmp_path / "shards"
    folder.mkdir()
    table = embed_table(25, faces_per=2)
    for i, start in enumerate(range(0, 50, 20)):
        table.iloc[start : start + 20].to_parquet(folder / f"part-{i:05d}.parquet", index=False)
    pd.DataFrame().to_parquet(folder / "part-00009.parquet")  # a shard with no face
    (folder / ".part-00010.parquet.123.tmp").write_bytes(b"partial")  # ignored
    rep = load_parquet(folder, store)
    assert (rep.files_added, rep.faces, rep.model) == (25, 50, "stub@1")
    again = load_parquet(folder, store)
    assert (again.faces, again.files_skipped) == (0, 25)
    with FaceIndex(store) as index:
        assert len(index) == 50 and index.info().n_files == 25
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExprsimError, match=r"no \.parquet files"):
        load_parquet(tmp_path / "empty", store)


def test_tables_with_bad_values_are_refused_whole(tmp_path: Path) -> None:
    good = embed_table(4)
    no_source = good.copy()
    no_source.loc[2, "source"] = None
    text = good.copy()
    text["e3"] = text["e3"].astype(object)
    text.loc[1, "e3"] = "abc"
    nan, inf = good.copy(), good.copy()
    nan.loc[0, "e0"] = np.nan
    inf.loc[3, "e15"] = np.inf
    cases = {"without a source": no_source, "must hold numbers": text}
    cases |= {"NaN, infinite": nan, "infinite or missing": inf}
    with FaceIndex(tmp_path / "x.db") as index:
        for match, table in cases.items():
            with pytest.raises(ExprsimError, match=match):
                index.add_table(table)
        assert len(index) == 0 and index.info().n_files == 0


def test_cli_refused_table_leaves_no_new_database(tmp_path: Path, capsys) -> None:
    """`index add --from-parquet`: a refused first table leaves no empty database behind; a
    failure after a good shard keeps what was committed (a rerun resumes); an existing
    database is never removed."""
    from exprsim.cli import main

    good, bad = embed_table(3), embed_table(2, seed=1).drop(columns=["e5"])
    good.to_parquet(tmp_path / "good.parquet", index=False)
    bad.to_parquet(tmp_path / "bad.parquet", index=False)
    db = tmp_path / "new.db"
    assert main(["-q", "index", "add", "--from-parquet", str(tmp_path / "bad.parquet"),
                 "--db", str(db)]) == 2  # fmt: skip
    assert "lacks the columns e5" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.parquet", "good.parquet"]
    shards = tmp_path / "shards"
    shards.mkdir()
    good.to_parquet(shards / "part-0.parquet", index=False)
    bad.to_parquet(shards / "part-1.parquet", index=False)
    assert main(["-q", "index", "add", "--from-parquet", str(shards), "--db", str(db)]) == 2
    with FaceIndex(db) as index:
        assert len(index) == 3  # the good shard stays
    assert main(["-q", "index", "add", "--from-parquet", str(tmp_path / "bad.parquet"),
                 "--db", str(db)]) == 2  # fmt: skip
    with FaceIndex(db) as index:
        assert len(index) == 3


def test_another_programs_database_is_left_untouched(tmp_path: Path) -> None:
    import sqlite3

    other = tmp_path / "notes.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE notes (body TEXT)")
    con.execute("INSERT INTO notes VALUES ('keep me')")
    con.commit()
    con.close()
    before = other.read_bytes()
    with pytest.raises(ExprsimError, match="not an exprsim index"):
        FaceIndex(other)
    assert other.read_bytes() == before
    con = sqlite3.connect(other)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    con.close()
    assert tables == {"notes"}
