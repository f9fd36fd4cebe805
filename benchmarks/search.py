"""Nearest-neighbour search benchmark for the face index (numbers in docs/benchmarks.md).

Measures, for each backend of :mod:`exprsim.index.ann`: build time, single-query latency
(p50 / p99 over ``--queries`` queries issued one at a time, k=10) and recall@10 against exact
search. Data:

* ``synthetic`` (default): ``--n`` unit vectors in 16-d drawn around 256 random centres
  (Gaussian noise sigma 0.12 per coordinate, then normalised; the nearest neighbour of a
  query lies ~0.32 away, comparable to a trained expression embedding), queries drawn the
  same way;
* ``uniform``: uniform on the sphere (the hard case for graph and cluster indexes);
* ``fer``: the default model's embeddings of FER+ Training (database) and PublicTest
  (queries) — needs the trained default model.

Also times exact numpy search at small sizes, which sets ``EXACT_MAX`` (below it the index
uses exact search).

Usage::

    python benchmarks/search.py                       # 1,000,000 synthetic vectors
    python benchmarks/search.py --data uniform --n 200000
    python benchmarks/search.py --data fer
    python benchmarks/search.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from typing import Any

import numpy as np

from exprsim.index.ann import ExactIndex, build_faiss_hnsw, build_faiss_ivf


def unit(a: np.ndarray) -> np.ndarray:
    return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)


def make_data(
    kind: str, n: int, n_queries: int, seed: int, model_name: str = "default"
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        return unit(rng.standard_normal((n, 16))), unit(rng.standard_normal((n_queries, 16)))
    if kind == "synthetic":
        centres = unit(rng.standard_normal((256, 16)))
        x = unit(centres[rng.integers(0, 256, n)] + 0.12 * rng.standard_normal((n, 16)))
        q = unit(
            centres[rng.integers(0, 256, n_queries)] + 0.12 * rng.standard_normal((n_queries, 16))
        )
        return x, q
    if kind == "fer":
        from exprsim.apps.classify import embed_fer
        from exprsim.data.fer import load_ferplus
        from exprsim.models.embedder import load_model

        model = load_model(model_name)
        train = load_ferplus("Training", drop_duplicates_of="PublicTest")
        test = load_ferplus("PublicTest")
        x = embed_fer(model, train.images, progress=True)
        q = embed_fer(model, test.images[:n_queries], progress=True)
        return x, q
    raise SystemExit(f"unknown --data {kind}")


def ground_truth(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    """Exact neighbours (faiss flat L2 when available: same answer, BLAS speed)."""
    try:
        import faiss

        flat = faiss.IndexFlatL2(x.shape[1])
        flat.add(x)
        return flat.search(q, k)[1]
    except ImportError:
        return ExactIndex(x).search(q, k)[1]


def latency(index: Any, q: np.ndarray, k: int) -> tuple[np.ndarray, list[float]]:
    ids, times = [], []
    for v in q:
        t = time.perf_counter()
        _, i = index.search(v[None], k)
        times.append(time.perf_counter() - t)
        ids.append(i[0])
    return np.array(ids), times


def recall(got: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(got, truth, strict=True)]))


def row(name: str, params: str, build: float, times: list[float], rec: float) -> dict[str, Any]:
    t = np.asarray(times) * 1e3
    r = {
        "backend": name,
        "params": params,
        "build_s": round(build, 2),
        "p50_ms": round(float(np.percentile(t, 50)), 4),
        "p99_ms": round(float(np.percentile(t, 99)), 4),
        "recall@10": round(rec, 4),
    }
    print(
        f"{name:<11}{params:<24}build {r['build_s']:>7.2f} s  p50 {r['p50_ms']:>8.4f} ms  "
        f"p99 {r['p99_ms']:>8.4f} ms  recall@10 {r['recall@10']:.4f}",
        flush=True,
    )
    return r


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", default="synthetic", choices=("synthetic", "uniform", "fer"))
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--exact-queries", type=int, default=100, help="queries timed for exact search")
    ap.add_argument("--threads", type=int, default=2, help="faiss threads for building")
    ap.add_argument("--ef", default="16,32,64,128", help="HNSW efSearch values")
    ap.add_argument("--nprobe", default="8,16,32,64", help="IVF nprobe values")
    ap.add_argument(
        "--small", default="5000,20000,50000,100000", help="sizes for the exact-search sweep"
    )
    ap.add_argument("--backends", default="exact,faiss-hnsw,faiss-ivf", help="comma-separated")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="default", help="with --data fer: model name or folder")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()

    import faiss

    k = 10
    x, q = make_data(args.data, args.n, args.queries, args.seed, args.model)
    n = len(x)
    print(
        f"data={args.data} n={n} queries={len(q)} dim={x.shape[1]} cpus={os.cpu_count()} "
        f"faiss={faiss.__version__} numpy={np.__version__} {platform.processor() or platform.machine()}",
        flush=True,
    )
    out: dict[str, Any] = {
        "data": args.data,
        "n": n,
        "queries": len(q),
        "rows": [],
        "exact_sweep": [],
    }

    # exact search at small sizes (where "auto" keeps exact search)
    for m in [int(s) for s in args.small.split(",") if s] if args.data != "fer" else []:
        if m > n:
            continue
        ex = ExactIndex(x[:m])
        _, times = latency(ex, q[: args.exact_queries], k)
        t = np.asarray(times) * 1e3
        out["exact_sweep"].append(
            {"n": m, "p50_ms": float(np.median(t)), "p99_ms": float(np.percentile(t, 99))}
        )
        print(
            f"exact n={m:>7}: p50 {np.median(t):.3f} ms  p99 {np.percentile(t, 99):.3f} ms",
            flush=True,
        )

    t0 = time.perf_counter()
    truth = ground_truth(x, q, k)
    print(f"ground truth (faiss flat, batch) {time.perf_counter() - t0:.1f} s", flush=True)

    backends = set(args.backends.split(","))
    faiss.omp_set_num_threads(1)  # single queries: one thread is fastest
    if "exact" in backends:
        t0 = time.perf_counter()
        ex = ExactIndex(x)
        build = time.perf_counter() - t0
        got, times = latency(ex, q[: args.exact_queries], k)
        rec = recall(got, truth[: args.exact_queries])
        out["rows"].append(row("exact", "numpy", build, times, rec))

    if "faiss-hnsw" in backends:
        faiss.omp_set_num_threads(args.threads)
        t0 = time.perf_counter()
        hnsw = build_faiss_hnsw(x)
        build = time.perf_counter() - t0
        faiss.omp_set_num_threads(1)
        for ef in [int(s) for s in args.ef.split(",") if s]:
            hnsw.set_search_params(ef_search=ef)
            got, times = latency(hnsw, q, k)
            rec = recall(got, truth)
            out["rows"].append(row("faiss-hnsw", f"M=32 efC=40 ef={ef}", build, times, rec))
        del hnsw

    if "faiss-ivf" in backends:
        faiss.omp_set_num_threads(args.threads)
        t0 = time.perf_counter()
        ivf = build_faiss_ivf(x)
        build = time.perf_counter() - t0
        faiss.omp_set_num_threads(1)
        nlist = ivf.index.nlist
        for nprobe in [int(s) for s in args.nprobe.split(",") if s]:
            ivf.set_search_params(nprobe=nprobe)
            got, times = latency(ivf, q, k)
            rec = recall(got, truth)
            out["rows"].append(
                row("faiss-ivf", f"nlist={nlist} nprobe={nprobe}", build, times, rec)
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
