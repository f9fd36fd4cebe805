"""Threads or processes for the face front end? Three ways to run it, one run.

* ``threads``: one process, ``embed_images(files)`` with the default 2 front-end threads
  (what exprsim ships);
* ``pool``: one process whose front end (``exprsim.faces.stream._analyze_one``: decode,
  detection, landmarks, alignment, quality) runs in a pool of ``--processes`` worker
  processes (``spawn``), the aligned crops coming back pickled and embedded in the parent:
  a prototype of a multi-process front end, IPC included;
* ``independent``: ``--processes`` separate processes started together, each calling
  ``embed_images(files, workers=1)`` with one torch thread; their faces/s are summed. No IPC
  and no shared embedder, so a ceiling for any multi-process front end, not a feature.

``threads`` and ``pool`` run in interleaved rounds in one process; ``independent`` after
them. Each call gets the peers benchmark's 8 letterboxed 640x480 JPEGs
(``benchmarks/peers.py``) ``--repeat`` times over: 1 is the peers benchmark's "one call for
all 8" (each call ends with a barrier, the slowest image, then the embedding), larger
values show a long stream (a folder).

    .venv/bin/python benchmarks/process_ceiling.py --seconds 12 --processes 2
    .venv/bin/python benchmarks/process_ceiling.py --seconds 12 --processes 2 --repeat 8
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def child(folder: str, seconds: float, torch_threads: int, repeat: int) -> None:
    import torch

    import exprsim

    torch.set_num_threads(torch_threads)
    files = sorted(str(p) for p in Path(folder).iterdir()) * repeat
    emb = exprsim.load_model()
    emb.embed_images(files, workers=1)  # warm-up: graphs, interpreters
    print("ready", flush=True)
    sys.stdin.readline()  # start together
    t0 = time.perf_counter()
    n = 0
    while time.perf_counter() - t0 < seconds:
        n += len(emb.embed_images(files, workers=1))
    print(f"{n / (time.perf_counter() - t0):.3f}", flush=True)


def independent(folder: str, n: int, seconds: float, repeat: int) -> list[float]:
    me = str(Path(__file__).resolve())
    args = [folder, str(seconds), "1", str(repeat)]
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


def _quiet_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C


def pooled_faces(pool: Any, files: list[str], align_config: Any, window: int) -> Iterator[Any]:
    """``analyze_stream``'s in-order window, with the pool's processes as workers."""
    from exprsim.faces.detect import DEFAULT_DETECTOR
    from exprsim.faces.stream import _analyze_one

    queue: collections.deque[Any] = collections.deque()
    for i, f in enumerate(files):
        queue.append(pool.submit(_analyze_one, i, f, DEFAULT_DETECTOR, align_config, None))
        while len(queue) >= window or (queue and queue[0].done()):
            yield queue.popleft().result()
    while queue:
        yield queue.popleft().result()


def in_process(folder: str, seconds: float, rounds: int, n: int, repeat: int) -> dict:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import numpy as np

    import exprsim

    files = sorted(str(p) for p in Path(folder).iterdir()) * repeat
    emb = exprsim.load_model()
    cfg = emb.config.preprocess.align_config()
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(n, mp_context=ctx, initializer=_quiet_worker) as pool:

        def pooled() -> int:
            crops = [af.crop for r in pooled_faces(pool, files, cfg, 4 * n) for af in r.faces]
            return len(emb.embed_crops(np.stack(crops), reframe=False))  # aligned crops

        def threads() -> int:
            return len(emb.embed_images(files))

        t0 = time.perf_counter()
        for _ in range(2):  # warm-up: every worker builds its detector
            pooled()
        start_s = time.perf_counter() - t0
        threads()
        rates: dict[str, list[float]] = {"threads": [], "pool": []}
        for _ in range(rounds):
            for name, fn in (("threads", threads), ("pool", pooled)):
                t0, faces = time.perf_counter(), 0
                while time.perf_counter() - t0 < seconds / rounds:
                    faces += fn()
                rates[name].append(round(faces / (time.perf_counter() - t0), 2))
    return {
        "pool_start_and_two_warm_up_calls_s": round(start_s, 2),
        "rounds": rates,
        "median": {k: float(np.median(v)) for k, v in rates.items()},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--seconds", type=float, default=12.0, help="per contender")
    ap.add_argument("--rounds", type=int, default=6, help="interleaved rounds (threads, pool)")
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1, help="the 8 files this many times per call")
    ap.add_argument("--json", default=None, help="write the figures here")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        folder, seconds, threads, repeat = args.child
        child(folder, float(seconds), int(threads), int(repeat))
        return 0
    if args.seconds <= 0 or args.rounds < 1 or args.processes < 1 or args.repeat < 1:
        ap.error("--seconds must be positive; --rounds, --processes and --repeat at least 1")
    spec = importlib.util.spec_from_file_location(
        "bench_peers", Path(__file__).with_name("peers.py")
    )
    assert spec is not None and spec.loader is not None
    peers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peers)
    with tempfile.TemporaryDirectory(prefix="exprsim-proc-") as tmp:
        sources, _ = peers.source_images(None)
        peers.prepare(sources, Path(tmp))
        res = in_process(tmp, args.seconds, args.rounds, args.processes, args.repeat)
        indep = independent(tmp, args.processes, args.seconds, args.repeat)
    res["independent"] = indep
    res.update(repeat=args.repeat, processes=args.processes, files_per_call=8 * args.repeat)
    one = res["median"]["threads"]
    print(f"{8 * args.repeat} files per call; faces/s, median of {args.rounds} rounds:")
    print(f"  one process, 2 front-end threads (shipped):       {one:.1f}")
    print(
        f"  one process, front end in {args.processes} worker processes:     "
        f"{res['median']['pool']:.1f} ({res['median']['pool'] / one:.2f}x; pool start and "
        f"two warm-up calls {res['pool_start_and_two_warm_up_calls_s']:.1f} s)"
    )
    print(
        f"  {args.processes} independent processes (ceiling, no IPC):     "
        f"{' + '.join(f'{r:.1f}' for r in indep)} = {sum(indep):.1f} ({sum(indep) / one:.2f}x)"
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
