"""Bulk loads, ANN caches and filtered search in awkward cases: a database made again
beside an old cache, relative sources, repeated or null cells, approximate indexes that
run out of candidates (the fourth robustness round, docs/robustness.md)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from stub_embedder import StubEmbedder, write_images

from exprsim.errors import ExprsimError
from exprsim.index.store import FaceIndex


def _table(sources: list[str], seed: int = 0, **cols) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    e = rng.normal(size=(len(sources), 16)).astype(np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    df = pd.DataFrame({"source": sources, **{f"e{i}": e[:, i] for i in range(16)}})
    for k, v in cols.items():
        df[k] = v
    return df


def test_a_database_made_again_does_not_take_the_old_ann_cache(tmp_path: Path) -> None:
    db = tmp_path / "faces.db"
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        ix.add_table(_table([f"a{i}.jpg" for i in range(5)], seed=1), model="stub@1")
        ix.query(ix.embeddings()[1][:1], k=1)  # builds and saves the cache
    for p in tmp_path.iterdir():
        if not p.name.startswith("faces.db.ann"):
            p.unlink()  # the database goes; its cache files stay
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        ix.add_table(_table([f"b{i}.jpg" for i in range(5)], seed=2), model="stub@1")
        assert not ix.info().ann_fresh  # same generation as the old one, another database
        ids, emb = ix.embeddings()
        dist, nn = ix.query(emb, k=1)
        assert nn[:, 0].tolist() == ids.tolist()  # was: other faces at 0.9-1.2
        assert np.allclose(dist[:, 0], 0.0, atol=1e-3)


def test_bulk_sources_are_stored_like_added_files(tmp_path: Path, monkeypatch) -> None:
    paths = write_images(tmp_path / "photos", 2)
    monkeypatch.chdir(tmp_path)
    rel = [f"photos/{p.name}" for p in paths]
    with FaceIndex(tmp_path / "x.db", embedder=StubEmbedder()) as ix:
        ix.add_table(_table([*rel, "https://example.org/x.jpg"]), model="stub@1")
        stored = {r.source for r in ix.records()}
        assert stored == {str(p.resolve()) for p in paths} | {"https://example.org/x.jpg"}
        assert ix.remove(["photos"]) == 2  # was: "removed 0 files"
        assert ix.add(paths).count("added") == 2 and len(ix) == 3  # no duplicate copies


def test_repeated_rows_are_refused_and_faces_numbered(tmp_path: Path) -> None:
    with FaceIndex(tmp_path / "x.db", embedder=StubEmbedder()) as ix:
        twice = pd.concat([_table(["a.jpg", "b.jpg"])] * 2)  # one shard loaded twice
        twice["face"] = 0
        with pytest.raises(ExprsimError, match=r"repeated \(source, face\) rows"):
            ix.add_table(twice, model="stub@1")
        assert len(ix) == 0
        two_faces = _table(["a.jpg", "a.jpg", "b.jpg"])  # no face column
        ix.add_table(two_faces, model="stub@1")
        assert sorted((Path(r.source).name, r.face_index) for r in ix.records()) == [
            ("a.jpg", 0),
            ("a.jpg", 1),
            ("b.jpg", 0),
        ]
        wide = _table(["c.jpg"])
        wide["e16"] = 0.0
        with pytest.raises(ExprsimError, match="past e15"):
            ix.add_table(wide, model="stub@1")


def test_null_text_cells_load(tmp_path: Path) -> None:
    df = _table(["a.jpg", "b.jpg"])
    df["sha256"] = pd.array(["f" * 64, None], dtype="string")
    df["detector"] = pd.array([None, "mediapipe"], dtype="string")
    with FaceIndex(tmp_path / "x.db", embedder=StubEmbedder()) as ix:
        rep = ix.add_table(df, model="stub@1")  # was: "type 'NAType' is not supported"
        assert rep.faces == 2
        again = ix.add_table(df, model="stub@1")  # the null hash is no hash: not "replaced"
        assert again.faces == 0 and again.files_skipped == 2


class _ShortSighted:
    """An index like HNSW / pgvector at their limit: ``query`` returns at most 50 faces."""

    def __init__(self, emb: np.ndarray, ok: np.ndarray) -> None:
        self.emb, self.ok = emb, ok

    def __len__(self) -> int:
        return len(self.emb)

    def query(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        d = np.linalg.norm(self.emb - q, axis=1)
        order = np.argsort(d)[: min(k, 50)]
        ids = np.full((1, k), -1, np.int64)
        dist = np.full((1, k), np.inf, np.float32)
        ids[0, : len(order)], dist[0, : len(order)] = order, d[order]
        return dist, ids

    def get(self, ids: list[int]) -> list[SimpleNamespace]:
        return [
            SimpleNamespace(
                id=i,
                source=f"{i}.jpg",
                sha256=None,
                face_index=0,
                quality_ok=bool(self.ok[i]),
                sharpness=10.0,
                yaw=0.0,
                box=np.zeros(4),
                label=None,
                tags=(),
            )
            for i in ids
        ]

    def embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        return np.arange(len(self.emb)), self.emb

    def nearest_passing(self, q, k, quality_ok_only=False, **kw):
        ids = np.flatnonzero(self.ok) if quality_ok_only else np.arange(len(self.emb))
        d = np.linalg.norm(self.emb[ids] - q, axis=1)
        order = np.argsort(d, kind="stable")[:k]
        return ids[order], d[order].astype(np.float64)

    def count_passing(self, quality_ok_only=False, **kw):
        return int(self.ok.sum()) if quality_ok_only else len(self.emb)


def test_a_strict_filter_finds_its_hits_past_the_approximate_candidates() -> None:
    from exprsim.apps.search import _collect_hits, _Filters, _Query

    rng = np.random.default_rng(0)
    q = np.zeros(16, np.float32)
    near = rng.normal(scale=0.01, size=(500, 16))  # 500 close faces, all failing quality
    far = 1.0 + rng.normal(scale=0.01, size=(8, 16))  # 8 good ones further away
    emb = np.vstack([near, far]).astype(np.float32)
    ok = np.r_[np.zeros(500, bool), np.ones(8, bool)]
    query = _Query("q.jpg", 0, q, None, None, None, None, None)
    filters = _Filters(False, True, None, None)
    hits, excluded = _collect_hits(_ShortSighted(emb, ok), query, 5, filters, None)
    assert [h.face_id for h in hits] == sorted(
        range(500, 508), key=lambda i: float(np.linalg.norm(emb[i]))
    )[:5]  # was: no hit at all
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5] and excluded["quality"] == 500


def test_password_never_printed() -> None:
    from exprsim.index.pgvector import redact

    assert redact("postgresql://u:s3cret@h/db") == "postgresql://u:***@h/db"
    assert "s3cret" not in redact("postgresql://u@h/db?sslmode=x&password=s3cret")
    assert "s3cret" not in redact("PostgreSQL://u:s3cret@h/db")
    assert "s3cret" not in redact("postgresql://h/db?PASSWORD=s3cret#x")


def test_an_emptied_index_takes_another_model(tmp_path: Path, store) -> None:
    from exprsim.index.store import ModelMismatchError

    with FaceIndex(store, embedder=StubEmbedder()) as ix:
        ix.add_table(_table(["a.jpg"]), model="old@1")
        with pytest.raises(ModelMismatchError):
            ix.add_table(_table(["b.jpg"]), model="new@2")
        ix.remove(["a.jpg"])
        assert len(ix) == 0
        ix.add_table(_table(["b.jpg"]), model="new@2")  # was refused forever
        assert ix.model == "new@2" and len(ix) == 1
        with pytest.raises(ModelMismatchError):
            ix.add_tag_reference("calm", np.eye(16)[0], "old@1")


def test_an_explicit_rebuild_backend_is_kept(tmp_path: Path) -> None:
    from exprsim.index import ann

    if not ann.faiss_available():
        pytest.skip("faiss-cpu not installed")
    db = tmp_path / "x.db"
    with FaceIndex(db) as ix:
        ix.add_table(_table([f"a{i}.jpg" for i in range(20)]), model="stub@1")
        assert ix.rebuild_ann("faiss-hnsw").backend == "faiss-hnsw"
    with FaceIndex(db) as ix:  # "auto": the database's own choice
        ix.add_table(_table([f"b{i}.jpg" for i in range(5)], seed=3), model="stub@1")
        ix.query(ix.embeddings()[1][:1], k=1)
        assert ix.info().ann_backend == "faiss-hnsw"  # was rebuilt as "exact" by the catch-up
        with pytest.raises(ExprsimError, match="unknown ANN backend"):
            ix.rebuild_ann("annoy")
        assert ix.rebuild_ann("auto").backend == "exact"  # "auto" gives the choice back
    with FaceIndex(db) as ix:
        assert ix.ann_backend == "auto"


def test_read_only_commands_leave_a_postgresql_database_without_an_index_alone(
    pg_url: str, capsys
) -> None:
    import psycopg

    from exprsim.cli import main

    assert main(["index", "info", "--db", pg_url]) == 2  # was: tables and extension created
    assert "no exprsim index" in capsys.readouterr().err
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT to_regclass('meta')").fetchone()[0] is None
    with FaceIndex(pg_url) as ix:  # a writer sets it up
        ix.add_table(_table(["a.jpg"]), model="stub@1")
    with FaceIndex(pg_url, create=False) as ix:
        assert len(ix) == 1
