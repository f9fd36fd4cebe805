"""Large-index costs of round 27's fixes, on synthetic faces (no detection): a summary of N
faces in K clusters (faces beyond the linkage's sample join their nearest centre), and
removing R files from an index of N. Prints seconds as JSON.

Run it alone (``flock /tmp/cpu.lock``); for a before/after, run it once more with
``PYTHONPATH`` naming the ``src`` of an older commit (docs/benchmarks.md)."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from exprsim.apps.summarize import summarize
from exprsim.index import FaceIndex


def unit_rows(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, 16))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def summary_seconds(n: int, k: int) -> float:
    x = unit_rows(n)
    t0 = time.perf_counter()
    summarize(x, n_clusters=k)
    return time.perf_counter() - t0


def remove_seconds(n: int, r: int) -> float:
    e = unit_rows(n, seed=1)
    table = pd.DataFrame(e, columns=[f"e{i}" for i in range(16)])
    table.insert(0, "source", [f"/photos/album{i // 1000:04d}/img{i:07d}.jpg" for i in range(n)])
    table["model"] = "stub@1"
    with tempfile.TemporaryDirectory() as tmp, FaceIndex(Path(tmp) / "faces.db") as ix:
        ix.add_table(table)
        gone = list(table["source"].iloc[:: max(1, n // r)][:r])
        t0 = time.perf_counter()
        assert ix.remove(gone) == len(gone)
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--faces", type=int, nargs="+", default=[50_000, 200_000])
    ap.add_argument("--clusters", type=int, default=2000)
    ap.add_argument("--remove", type=int, default=1000)
    args = ap.parse_args()
    out = {}
    for n in args.faces:
        out[f"summarize N={n} K={args.clusters}"] = round(summary_seconds(n, args.clusters), 2)
    n = max(args.faces)
    out[f"remove {args.remove} of N={n}"] = round(remove_seconds(n, args.remove), 2)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
