"""``FaceIndex.nearest_passing`` / ``count_passing`` (the exact, filtered ranking a
quality-filtered search uses) on both engines, against brute force over the stored
embeddings; and a filtered search through it on PostgreSQL's HNSW index."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from exprsim.apps.search import search
from exprsim.index import FaceIndex


def _faces(n: int, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 16))
    x[n // 2 : n // 2 + 5] = x[n // 2]  # five identical faces: ties go to the lower id
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    df = pd.DataFrame(x.astype(np.float32), columns=[f"e{i}" for i in range(16)])
    df.insert(0, "source", [f"/nonexistent/img{i}.jpg" for i in range(n)])
    df.insert(1, "face", 0)
    df["quality_ok"] = rng.random(n) < 0.1
    df["sharpness"] = rng.random(n) * 100
    df["yaw"] = rng.normal(size=n) * 20
    df["x1"], df["y1"], df["x2"], df["y2"] = 0.0, 0.0, 10.0, 10.0
    return df


def _passes(r, opts) -> bool:
    return bool(
        (not opts.get("quality_ok_only") or r.quality_ok)
        and r.sharpness >= opts.get("min_sharpness", -np.inf)
        and abs(r.yaw) <= opts.get("max_abs_yaw", np.inf)
    )


@pytest.mark.parametrize(
    "opts",
    [{}, {"quality_ok_only": True}, {"min_sharpness": 60.0, "max_abs_yaw": 15.0}],
)
def test_nearest_passing_is_brute_force_over_the_passing_faces(store, opts) -> None:
    with FaceIndex(store) as index:
        index.add_table(_faces(600), model="stub@1")
        ids, emb = index.embeddings()
        recs = {r.id: r for r in index.records()}
        ok = np.array([_passes(recs[int(i)], opts) for i in ids])
        assert index.count_passing(**opts) == int(ok.sum())
        for q in (emb[300], emb[7], -emb[11]):  # emb[300] has four identical twins
            d = np.linalg.norm(emb.astype(np.float64) - q.astype(np.float64), axis=1)
            order = np.lexsort((ids, d))
            want = [int(ids[j]) for j in order if ok[j]][:25]
            got_ids, got_d = index.nearest_passing(q, 25, **opts)
            assert got_ids.tolist() == want
            assert np.allclose(got_d, d[[list(ids).index(i) for i in want]], atol=1e-6)
        few_ids, _ = index.nearest_passing(emb[0], 10_000, **opts)
        assert len(few_ids) == int(ok.sum())  # fewer than k pass: all of them


def test_a_filtered_search_on_postgresql_is_exact(pg_url: str) -> None:
    # on the HNSW index a strict filter kept the first k passing faces among its candidates
    with FaceIndex(pg_url) as index:
        index.add_table(_faces(1500, seed=4), model="stub@1")
        ids, emb = index.embeddings()
        recs = {r.id: r for r in index.records()}
        ok = np.array([bool(recs[int(i)].quality_ok) for i in ids])
        model = types.SimpleNamespace(config=types.SimpleNamespace(name_version="stub@1"))
        rng = np.random.default_rng(0)
        for q in rng.normal(size=(5, 16)).astype(np.float32):
            q /= np.linalg.norm(q)
            query = types.SimpleNamespace(
                embedding=q,
                source="<q>",
                face_index=0,
                aligned=types.SimpleNamespace(
                    crop=None, face=types.SimpleNamespace(box=np.zeros(4))
                ),
            )
            res = search(query, index, k=10, embedder=model, quality_ok_only=True)
            d = np.linalg.norm(emb.astype(np.float64) - q.astype(np.float64), axis=1)
            want = [int(ids[j]) for j in np.lexsort((ids, d)) if ok[j]][:10]
            assert [h.face_id for h in res.hits] == want
            assert res.excluded["quality"] == int((~ok).sum())


def test_sqlite_asks_the_database_which_faces_pass(tmp_path: Path) -> None:
    with FaceIndex(tmp_path / "f.db") as index:
        index.add_table(_faces(300), model="stub@1")
        seen: list[str] = []
        real = index._db.execute

        def spy(sql, params=()):
            seen.append(sql)
            return real(sql, params)

        index._db.execute = spy  # type: ignore[method-assign]
        index.nearest_passing(np.ones(16, np.float32) / 4, 5, quality_ok_only=True)
        assert any("WHERE 1 = 1 AND quality_ok <> 0" in s for s in seen)


def test_an_exact_index_answers_a_lenient_filtered_search_itself(
    tmp_path: Path, monkeypatch
) -> None:
    # an exact index returns neighbours in true order: with most faces passing, walking it
    # is faster than reading the passing faces; with few, the passing faces are read
    with FaceIndex(tmp_path / "f.db") as index:
        index.add_table(_faces(400, seed=6), model="stub@1")
        index.rebuild_ann("exact")
        assert index.searches_exactly
        ids, emb = index.embeddings()
        recs = sorted(index.records(), key=lambda r: r.id)
        real = index.nearest_passing
        called: list[int] = []

        def spy(*a, **k):
            called.append(1)
            return real(*a, **k)

        monkeypatch.setattr(index, "nearest_passing", spy)
        model = types.SimpleNamespace(config=types.SimpleNamespace(name_version="stub@1"))
        q = emb[3]
        query = types.SimpleNamespace(
            embedding=q,
            source="<q>",
            face_index=0,
            aligned=types.SimpleNamespace(crop=None, face=types.SimpleNamespace(box=np.zeros(4))),
        )
        d = np.linalg.norm(emb.astype(np.float64) - q.astype(np.float64), axis=1)
        for opts, read in (({"max_abs_yaw": 25.0}, False), ({"quality_ok_only": True}, True)):
            called.clear()
            ok = np.array([_passes(r, opts) for r in recs])
            assert (ok.mean() >= 0.25) != read
            res = search(query, index, k=8, embedder=model, **opts)
            want = [int(ids[j]) for j in np.lexsort((ids, d)) if ok[j]][:8]
            assert [h.face_id for h in res.hits] == want and bool(called) == read
            assert res.excluded["quality"] == int((~ok).sum())


def test_the_embeddings_kept_for_filtered_searches_follow_writes(tmp_path: Path) -> None:
    with FaceIndex(tmp_path / "f.db") as index, FaceIndex(tmp_path / "f.db") as other:
        first = _faces(200, seed=7)
        index.add_table(first, model="stub@1")
        q = np.asarray(first.iloc[0, 2:18], np.float32)
        assert index.nearest_passing(q, 1)[1][0] < 1e-6
        later = _faces(50, seed=8)
        later["source"] = [f"/nonexistent/later{i}.jpg" for i in range(50)]
        other.add_table(later, model="stub@1")  # another connection writes
        q2 = np.asarray(later.iloc[0, 2:18], np.float32)
        ids, d = index.nearest_passing(q2, 1)
        assert d[0] < 1e-6 and ids[0] not in set(index.embeddings()[0][:200].tolist())
        other.remove([f"/nonexistent/later{i}.jpg" for i in range(50)])
        assert index.nearest_passing(q2, 1)[1][0] > 1e-3  # gone again
