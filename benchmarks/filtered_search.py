"""Search latency with and without quality filters, on the exact and faiss-ivf backends.

Synthetic unit vectors (80% ``quality_ok``, sharpness uniform in 0-100) at 30,000 and
100,000 faces in a temporary SQLite index; 8 random queries, k = 10, after one warm-up;
prints ms per search as JSON (docs/scaling.md, item 8)."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from exprsim.apps.search import search
from exprsim.index import FaceIndex

MODEL = types.SimpleNamespace(config=types.SimpleNamespace(name_version="stub@1"))
FILTERS: dict[str, dict[str, Any]] = {
    "none": {},
    "quality_ok 80%": {"quality_ok_only": True},
    "sharpness>=99 1%": {"min_sharpness": 99.0},
}


def query(e: np.ndarray) -> types.SimpleNamespace:
    face = types.SimpleNamespace(box=np.zeros(4))
    aligned = types.SimpleNamespace(crop=None, face=face)
    return types.SimpleNamespace(embedding=e, source="<q>", face_index=0, aligned=aligned)


def faces(n: int, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    x = rng.normal(size=(n, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    df = pd.DataFrame(x, columns=[f"e{i}" for i in range(16)])
    df.insert(0, "source", [f"/n/{i}.jpg" for i in range(n)])
    df.insert(1, "face", 0)
    df["quality_ok"] = rng.random(n) < 0.8
    df["sharpness"] = rng.random(n) * 100
    df["yaw"] = rng.normal(size=n) * 20
    df["x1"], df["y1"], df["x2"], df["y2"] = 0.0, 0.0, 10.0, 10.0
    return df, x


def main() -> None:
    out = {}
    for n in (30_000, 100_000):
        rng = np.random.default_rng(0)
        df, x = faces(n, rng)
        with tempfile.TemporaryDirectory() as tmp, FaceIndex(Path(tmp) / "f.db") as ix:
            ix.add_table(df, model="stub@1")
            for backend in ("exact", "faiss-ivf"):
                ix.rebuild_ann(backend)
                for name, opts in FILTERS.items():
                    qs = x[rng.integers(0, n, 8)]
                    search(query(qs[0]), ix, k=10, embedder=MODEL, **opts)
                    t = time.perf_counter()
                    for q in qs:
                        search(query(q), ix, k=10, embedder=MODEL, **opts)
                    ms = (time.perf_counter() - t) / len(qs) * 1000
                    out[f"{n} {backend} {name}"] = round(ms, 1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    argparse.ArgumentParser(  # --help says what it runs, and runs nothing
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args()
    main()
