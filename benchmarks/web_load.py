"""Load test of ``exprsim serve``: N concurrent photo uploads to ``/api/faces``, all answered?

Usage: ``python benchmarks/web_load.py [--n 20] [--json out.json] [--arenas serve|default]``

``--arenas serve`` caps glibc's malloc arenas as ``exprsim serve`` does
(:func:`exprsim.web.server.cap_malloc_arenas`, the default here); ``default`` leaves glibc's.

Starts the app (shipped model, a temporary index) on a free loopback port with uvicorn in a
thread, fires ``--n`` uploads of the bundled sample photos at once with httpx, checks every
answer (status 200, the expected number of faces) and prints p50 / p99 latency and the
wall time of the burst. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--json")
    ap.add_argument("--arenas", choices=("serve", "default"), default="serve")
    args = ap.parse_args()
    if args.arenas == "serve":  # first, as `exprsim serve` does it
        from exprsim.web.server import cap_malloc_arenas

        print(f"malloc arenas capped: {cap_malloc_arenas()}")

    import httpx
    import uvicorn

    from exprsim import load_model
    from exprsim.samples import sample_images
    from exprsim.web import ServeConfig, create_app

    tmp = Path(tempfile.mkdtemp(prefix="exprsim-load-"))
    app = create_app(ServeConfig(db=str(tmp / "faces.db")), embedder=load_model())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}/api/faces"
    photos = [p.read_bytes() for p in sample_images()]

    async def one(client: httpx.AsyncClient, i: int) -> tuple[float, int, int]:
        data = photos[i % len(photos)]
        t0 = time.perf_counter()
        r = await client.post(url, files={"file": (f"p{i}.jpg", data, "image/jpeg")})
        n_faces = len(r.json().get("faces", [])) if r.status_code == 200 else -1
        return time.perf_counter() - t0, r.status_code, n_faces

    async def burst() -> list[tuple[float, int, int]]:
        async with httpx.AsyncClient(timeout=300) as client:
            await one(client, 0)  # warm-up: detector graphs, first forward pass
            return await asyncio.gather(*(one(client, i) for i in range(args.n)))

    t0 = time.perf_counter()
    results = asyncio.run(burst())
    wall = time.perf_counter() - t0
    server.should_exit = True
    lat = np.array([r[0] for r in results]) * 1000
    ok = sum(1 for _, status, faces in results if status == 200 and faces >= 1)
    out = {
        "n": args.n,
        "arenas": args.arenas,
        "answered_ok": ok,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "max_ms": float(lat.max()),
        "wall_s": wall,
    }
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
