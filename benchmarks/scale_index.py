"""Scale-out benchmarks of the face index (figures in docs/benchmarks.md, "Scale-out").

Steps (each a separate run, so that each stays short; state lives in ``--workdir``):

* ``fill``: ``--n`` random unit 16-d vectors into a SQLite store through the bulk path
  (``FaceIndex.add_table``, the fast path that ``index add --from-parquet`` uses); times
  the load, then the full IVF build (``rebuild_ann``), and recall@10 against exact search.
* ``incremental``: ``--rounds`` times, add ``--add`` faces through ``add_faces`` (one
  transaction per photo, as ``index add`` does) and bring the ANN cache up to date with
  ``refresh_ann`` (incremental catch-up); reports p50/max of add + refresh, of refresh
  alone, and recall@10 after.
* ``pg``: the same vectors into PostgreSQL + pgvector (``pgserver`` in ``--workdir``, or
  ``--pg URI``): COPY load rate, HNSW build time, single-query p50/p99, recall@10.
* ``ivfpq``: ``--n`` vectors in a faiss IVF-PQ index (with and without exact re-ranking):
  memory, build time, query p50/p99, recall@10 (the 10M-on-one-machine figure).

Usage::

    python benchmarks/scale_index.py fill --n 1000000 --workdir /tmp/scale
    python benchmarks/scale_index.py incremental --workdir /tmp/scale
    python benchmarks/scale_index.py pg --n 1000000 --workdir /tmp/scale
    python benchmarks/scale_index.py ivfpq --n 10000000
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np

from exprsim.index import ann
from exprsim.index.store import FaceIndex


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, 16)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def vectors(n: int, seed: int = 0, chunk: int = 1_000_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([unit(rng, min(chunk, n - s)) for s in range(0, n, chunk)])


def table(x: np.ndarray, start: int = 0, prefix: str = "s") -> Any:
    import pandas as pd

    cols: dict[str, Any] = {"source": [f"/bulk/{prefix}{start + i}.jpg" for i in range(len(x))]}
    cols.update({f"e{i}": x[:, i] for i in range(16)})
    cols["model"] = "synthetic@1"
    return pd.DataFrame(cols)


def recall_at_10(search: Any, exact: ann.ExactIndex, queries: np.ndarray) -> tuple[float, list]:
    _, want = exact.search(queries, 10)
    got, lat = [], []
    for q in queries:
        t0 = time.perf_counter()
        _, ids = search(q[None], 10)
        lat.append(time.perf_counter() - t0)
        got.append(ids[0])
    rec = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, want, strict=True)]))
    return rec, lat


def ms(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)) * 1000, 3)


def rss_gib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)


def step_fill(args: argparse.Namespace) -> dict[str, Any]:
    db = Path(args.workdir) / "faces.db"
    for p in Path(args.workdir).glob("faces.db*"):
        p.unlink()
    x = vectors(args.n)
    t0 = time.perf_counter()
    with FaceIndex(db, ann_backend="faiss-ivf") as index:
        for s in range(0, args.n, 250_000):
            index.add_table(table(x[s : s + 250_000], s))
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        stamp = index.rebuild_ann()
        build_s = time.perf_counter() - t0
        ids, emb = index.embeddings()
        q = unit(np.random.default_rng(1), args.queries)
        rec, lat = recall_at_10(index.query, ann.ExactIndex(emb, ids), q)
    return {
        "step": "fill",
        "n": args.n,
        "load_s": round(load_s, 1),
        "load_rows_per_s": round(args.n / load_s),
        "full_ivf_rebuild_s": round(build_s, 1),
        "backend": stamp.backend,
        "recall@10": round(rec, 4),
        "query_p50_ms": ms(lat, 50),
        "query_p99_ms": ms(lat, 99),
        "db_bytes": db.stat().st_size,
    }


def step_incremental(args: argparse.Namespace) -> dict[str, Any]:
    from exprsim.faces.types import AlignedFace, Face, Quality
    from exprsim.models.embedder import FaceEmbedding

    db = Path(args.workdir) / "faces.db"
    rng = np.random.default_rng(7)
    aligned = AlignedFace(
        Face(np.array([0, 0, 32, 32], np.float32), 0.9, np.zeros((5, 2), np.float32), "synthetic"),
        None,
        Quality(sharpness=1.0, yaw=0.0, pitch=0.0, roll=0.0, ok=True),
    )
    totals, refresh, recalls = [], [], []
    for r in range(args.rounds):
        new = unit(rng, args.add)
        faces = [FaceEmbedding(f"/new/r{r}_{i}.jpg", 0, aligned, e) for i, e in enumerate(new)]
        with FaceIndex(db, ann_backend="faiss-ivf", store_crops=False) as index:
            t0 = time.perf_counter()
            index.add_faces(faces, model="synthetic@1")
            t1 = time.perf_counter()
            stamp = index.refresh_ann()
            t2 = time.perf_counter()
            totals.append(t2 - t0)
            refresh.append(t2 - t1)
            assert stamp.trained_count < stamp.count, "the cache was rebuilt, not caught up"
            if r == args.rounds - 1:
                ids, emb = index.embeddings()
                q = np.concatenate([new[:50], unit(np.random.default_rng(1), args.queries - 50)])
                rec, _ = recall_at_10(index.query, ann.ExactIndex(emb, ids), q)
                recalls.append(rec)
                n = len(ids)
    return {
        "step": "incremental",
        "n_after": n,
        "faces_per_add": args.add,
        "rounds": args.rounds,
        "add_plus_refresh_p50_s": round(float(np.median(totals)), 2),
        "add_plus_refresh_max_s": round(float(np.max(totals)), 2),
        "refresh_p50_s": round(float(np.median(refresh)), 2),
        "recall@10_after": round(recalls[-1], 4),
    }


def step_pg(args: argparse.Namespace) -> dict[str, Any]:
    from exprsim.index import pgvector

    server = None
    url = args.pg
    if not url:
        import pgserver

        server = pgserver.get_server(str(Path(args.workdir) / "pg"), cleanup_mode="stop")
        server.psql("DROP DATABASE IF EXISTS bench;")
        server.psql("CREATE DATABASE bench;")
        url = server.get_uri("bench")
    x = vectors(args.n)
    pgvector.BULK_REBUILD_MIN = 10**15  # build the HNSW index separately, to time it
    out: dict[str, Any] = {"step": "pg", "n": args.n}
    with FaceIndex(url) as index:
        index._db.execute(f"DROP INDEX IF EXISTS {pgvector.HNSW_INDEX}")
        # a writer builds a missing HNSW index when it ends: not during the timed load
        index._db.ensure_vector_index = lambda: None  # type: ignore[attr-defined]
        t0 = time.perf_counter()
        for s in range(0, args.n, 250_000):
            index.add_table(table(x[s : s + 250_000], s))
        out["load_s"] = round(time.perf_counter() - t0, 1)
        out["load_rows_per_s"] = round(args.n / out["load_s"])
        print(json.dumps(out), flush=True)  # partial results survive a timeout
        out["hnsw_build_s"] = round(index._db.build_vector_index(), 1)
        print(json.dumps(out), flush=True)
        out["db_bytes"] = index.info().db_bytes
        ids, emb = index.embeddings()
        q = unit(np.random.default_rng(1), args.queries)
        exact = ann.ExactIndex(emb, ids)
        for ef in (40, pgvector.EF_SEARCH):
            index._db.execute(f"SET hnsw.ef_search = {ef}")
            rec, lat = recall_at_10(index.query, exact, q)
            out[f"ef{ef}"] = {
                "recall@10": round(rec, 4),
                "p50_ms": ms(lat, 50),
                "p99_ms": ms(lat, 99),
            }
    if server is not None:
        server.cleanup()
    return out


def step_ivfpq(args: argparse.Namespace) -> dict[str, Any]:
    import faiss

    x = vectors(args.n)
    q = unit(np.random.default_rng(1), args.queries)
    t0 = time.perf_counter()
    _, want = ann.ExactIndex(x).search(q, 10)
    exact_s = time.perf_counter() - t0
    nlist = args.nlist
    quant = faiss.IndexFlatL2(16)
    index = faiss.IndexIVFPQ(quant, 16, nlist, args.pq_m, 8)
    t0 = time.perf_counter()
    sample = np.random.default_rng(0).choice(args.n, min(args.n, 32 * nlist), replace=False)
    index.train(x[sample])
    train_s = time.perf_counter() - t0
    refine = faiss.IndexRefineFlat(index)  # keeps the raw vectors too, for re-ranking
    t0 = time.perf_counter()
    refine.add(x)  # adds to the IVF-PQ index and to the flat re-ranking store
    add_s = time.perf_counter() - t0
    out: dict[str, Any] = {
        "step": "ivfpq",
        "n": args.n,
        "nlist": nlist,
        "pq": f"{args.pq_m}x8",
        "train_s": round(train_s, 1),
        "add_s": round(add_s, 1),
        "index_bytes": int(faiss.serialize_index(index).size),
        "raw_vector_bytes": int(x.nbytes),
        "exact_search_per_query_ms": round(exact_s / len(q) * 1000, 1),
        "rss_after_build_gib": rss_gib(),
    }
    print(json.dumps(out), flush=True)  # partial results survive a timeout
    for nprobe in (32, 128):
        index.nprobe = nprobe
        for name, idx, kf in (("ivfpq", index, 0), ("ivfpq+rerank", refine, 4)):
            if kf:
                refine.k_factor = kf
            lat, got = [], []
            for v in q:
                t0 = time.perf_counter()
                _, ids = idx.search(v[None], 10)
                lat.append(time.perf_counter() - t0)
                got.append(ids[0])
            rec = float(
                np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, want, strict=True)])
            )
            out[f"{name}_nprobe{nprobe}"] = {
                "recall@10": round(rec, 4),
                "p50_ms": ms(lat, 50),
                "p99_ms": ms(lat, 99),
            }
            print(json.dumps(out), flush=True)
    out["max_rss_gib"] = rss_gib()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", choices=["fill", "incremental", "pg", "ivfpq"])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--workdir", default="/tmp/exprsim_scale")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--add", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--pg", default=None, help="PostgreSQL URI (default: pgserver in --workdir)")
    ap.add_argument("--pq-m", type=int, default=8)
    ap.add_argument("--nlist", type=int, default=4096, help="IVF lists of the ivfpq step")
    ap.add_argument("--json", default=None, help="append the result as one JSON line here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    result = globals()[f"step_{args.step}"](args)
    result["cpus"] = os.cpu_count()
    result["max_rss_gib"] = rss_gib()
    print(json.dumps(result))
    if args.json:
        with open(args.json, "a") as fh:
            fh.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
