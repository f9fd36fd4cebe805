"""What a front end in worker processes could give: N independent processes at once.

Each child loads the shipped model and calls ``embed_images(files, workers=1)`` in a loop
for ``--seconds`` (one front-end thread, ``--torch-threads`` torch threads); the children run
at the same time and their faces/s are summed. For comparison the script first measures one
process with the default 2 front-end threads. No IPC is counted, so the sum is a ceiling
for a multi-process front end, not a feature. Files: the peers benchmark's 8 letterboxed
640x480 JPEGs (``benchmarks/peers.py``).

    .venv/bin/python benchmarks/process_ceiling.py --seconds 15 --processes 2
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def child(folder: str, seconds: float, torch_threads: int, workers: int) -> None:
    import torch

    import exprsim

    torch.set_num_threads(torch_threads)
    files = sorted(str(p) for p in Path(folder).iterdir())
    emb = exprsim.load_model()
    emb.embed_images(files, workers=workers)  # warm-up: graphs, interpreters
    print("ready", flush=True)
    sys.stdin.readline()  # start together
    t0 = time.perf_counter()
    n = 0
    while time.perf_counter() - t0 < seconds:
        n += len(emb.embed_images(files, workers=workers))
    print(f"{n / (time.perf_counter() - t0):.3f}", flush=True)


def run(folder: str, n: int, seconds: float, torch_threads: int, workers: int) -> list[float]:
    me = str(Path(__file__).resolve())
    args = [folder, str(seconds), str(torch_threads), str(workers)]
    procs = [
        subprocess.Popen(
            [sys.executable, me, "--child", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for _ in range(n)
    ]
    for p in procs:  # every child warmed up before any starts timing
        assert p.stdout is not None
        while p.stdout.readline().strip() != "ready":
            pass
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    rates = []
    for p in procs:
        out, _ = p.communicate()
        rates.append(float(out.strip().splitlines()[-1]))
    return rates


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        folder, seconds, threads, workers = args.child
        child(folder, float(seconds), int(threads), int(workers))
        return 0
    spec = importlib.util.spec_from_file_location(
        "bench_peers", Path(__file__).with_name("peers.py")
    )
    assert spec is not None and spec.loader is not None
    peers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peers)
    with tempfile.TemporaryDirectory(prefix="exprsim-proc-") as tmp:
        sources, _ = peers.source_images(None)
        peers.prepare(sources, Path(tmp))
        (one,) = run(tmp, 1, args.seconds, 2, 2)
        print(f"one process, 2 front-end threads, 2 torch threads: {one:.1f} faces/s")
        rates = run(tmp, args.processes, args.seconds, 1, 1)
        print(
            f"{args.processes} processes at once, 1 front-end thread and 1 torch thread each: "
            f"{' + '.join(f'{r:.1f}' for r in rates)} = {sum(rates):.1f} faces/s "
            f"({sum(rates) / one:.2f}x)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
