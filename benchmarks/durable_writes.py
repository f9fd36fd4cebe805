"""What syncing a result to disk before its rename costs (``replace_atomically``, durable
or not): a 20 KB file written over one of 50 names, 400 times a round, 5 rounds
alternating; prints the median ms per file of each as JSON (docs/benchmarks.md)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from exprsim.io import replace_atomically

DATA = os.urandom(20_000)


def ms_per_file(folder: Path, durable: bool, n: int = 400) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        replace_atomically(
            folder / f"f{i % 50}.bin", lambda tmp: tmp.write_bytes(DATA), durable=durable
        )
    return (time.perf_counter() - t0) / n * 1000


def main(folder: str = ".") -> None:
    rounds: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        for _ in range(5):
            for durable in (False, True):
                rounds[durable].append(ms_per_file(Path(tmp), durable))
    print(json.dumps({
        "ms_per_file": {("synced" if d else "not synced"): round(statistics.median(r), 3)
                        for d, r in rounds.items()},
        "rounds": {("synced" if d else "not synced"): [round(x, 3) for x in r]
                   for d, r in rounds.items()},
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--dir", default=".", help="folder on the disk to time (a temporary folder is made there)"
    )
    main(ap.parse_args().dir)
