"""``FaceIndex.reembed`` on a larger index: N faces with face-like crops (smooth synthetic
112x112 images, a few KB as JPEG, as stored crops are) added through ``add_faces`` to a
temporary SQLite index (``--engine postgresql``: a database on a temporary PostgreSQL
server started with the ``pgserver`` wheel) recorded as another model's, then re-embedded
with the shipped model; prints seconds, faces per second and peak memory as JSON
(docs/benchmarks.md). The peak memory is this process's: the server's is not counted."""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from exprsim.faces.types import AlignedFace, Face, Quality
from exprsim.index import FaceIndex
from exprsim.models.embedder import FaceEmbedding, load_model


def crops(n: int, seed: int = 0) -> np.ndarray:
    """``(n, 112, 112, 3)`` uint8: blurred noise plus a gradient, which JPEG compresses
    about as much as a real aligned face."""
    import cv2

    rng = np.random.default_rng(seed)
    ramp = np.linspace(40, 200, 112, dtype=np.float32)[None, :, None]
    out = np.empty((n, 112, 112, 3), np.uint8)
    for i in range(n):
        noise = rng.normal(0, 40, (28, 28, 3)).astype(np.float32)
        out[i] = np.clip(cv2.resize(noise, (112, 112)) + ramp, 0, 255).astype(np.uint8)
    return out


def build(db: Path | str, n: int, model: str) -> float:
    """Add ``n`` one-face sources; returns seconds."""
    face = Face(np.array([0, 0, 112, 112], np.float32), 0.9, np.zeros((5, 2), np.float32), "stub")
    quality = Quality(50.0, 0.0, 0.0, 0.0, True)
    emb = np.eye(16, dtype=np.float32)[0]
    t0 = time.perf_counter()
    with FaceIndex(db) as ix:
        for start in range(0, n, 1000):
            batch = crops(min(1000, n - start), seed=start)
            faces = [
                FaceEmbedding(
                    f"/synthetic/{start + i:07d}.jpg", 0, AlignedFace(face, c, quality), emb
                )
                for i, c in enumerate(batch)
            ]
            ix.add_faces(faces, model)
    return time.perf_counter() - t0


@contextlib.contextmanager
def database(engine: str) -> Iterator[Path | str]:
    """A new, empty index location of ``engine``, removed afterwards."""
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        if engine == "sqlite":
            yield Path(tmp) / "faces.db"
            return
        import pgserver

        server = pgserver.get_server(str(Path(tmp) / "pg"), cleanup_mode="stop")
        try:
            yield server.get_uri()
        finally:
            server.cleanup()


def mean_crop_bytes(db: Path | str) -> float:
    sql = "SELECT AVG(LENGTH(crop)) FROM faces"
    if isinstance(db, Path):
        return float(sqlite3.connect(db).execute(sql).fetchone()[0])
    import psycopg

    with psycopg.connect(db) as conn:
        row = conn.execute(sql).fetchone()
        assert row is not None
        return float(row[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--faces", type=int, default=20_000)
    ap.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite")
    args = ap.parse_args()
    embedder = load_model()
    with database(args.engine) as db:
        built = build(db, args.faces, "older@1")
        crop_bytes = mean_crop_bytes(db)
        with FaceIndex(db, embedder=embedder) as ix:
            t0 = time.perf_counter()
            report = ix.reembed()
            seconds = time.perf_counter() - t0
    print(json.dumps({
        "engine": args.engine,
        "faces": report.n_faces,
        "mean_crop_bytes": round(crop_bytes),
        "build_s": round(built, 1),
        "reembed_s": round(seconds, 1),
        "faces_per_s": round(report.n_faces / seconds, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
