"""Copies of one photo in a PostgreSQL index: are the other faces still found?

Loads ``--copies`` equal unit vectors (as many sources), then 200 other random ones, into
a fresh PostgreSQL database (``pgserver`` in a temporary folder, or ``--pg URI`` of a
server whose user may create databases), and counts the other faces whose own vector is
not their nearest hit through ``FaceIndex.query`` (HNSW). Figures in docs/benchmarks.md
("Copies kept out of the HNSW graph").

Usage::

    python benchmarks/pg_copies.py --copies 400 1000 3000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pandas as pd

from exprsim.index.store import FaceIndex


def _table(emb: np.ndarray, prefix: str) -> pd.DataFrame:
    cols = {f"e{i}": emb[:, i] for i in range(16)}
    return pd.DataFrame({"source": [f"/{prefix}/{i}.jpg" for i in range(len(emb))], **cols})


def missed(url: str, n_copies: int, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((201, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    with FaceIndex(url) as index:
        index.add_table(_table(np.repeat(x[:1], n_copies, axis=0), "copy"), model="m@1")
        index.add_table(_table(x[1:], "other"), model="m@1")
        t0 = time.perf_counter()
        dist, _ = index.query(x[1:], 10)
        seconds = time.perf_counter() - t0
    return {
        "copies": n_copies,
        "others": 200,
        "not_own_nearest": int((dist[:, 0] > 1e-5).sum()),
        "query_ms": round(1000 * seconds / 200, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, nargs="+", default=[400, 1000, 3000])
    ap.add_argument("--pg", default=None, help="PostgreSQL URI (default: pgserver)")
    args = ap.parse_args()
    server = None
    admin = args.pg
    if not admin:
        import pgserver

        server = pgserver.get_server(tempfile.mkdtemp(), cleanup_mode="stop")
        admin = server.get_uri()
    import psycopg

    try:
        for n in args.copies:
            name = f"exprsim_copies_{n}"
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {name}")
                conn.execute(f"CREATE DATABASE {name}")
            url = urlunsplit(urlsplit(admin)._replace(path="/" + name))
            print(json.dumps(missed(url, n)), flush=True)
    finally:
        if server is not None:
            server.cleanup()


if __name__ == "__main__":
    main()
