"""Ray embedding throughput against the local path (figures in docs/benchmarks.md, "Scale-out").

Makes ``--images`` inputs by linking the shipped sample photos (640x480-ish JPEGs with one
face each) under ``--workdir``, then embeds them three ways with the shipped model and the
default detector:

* ``local``: :func:`exprsim.apps.embed.embed_files` in this process (``exprsim embed``);
* ``ray-1`` / ``ray-2``: :func:`exprsim.scale.embed_with_ray` on a local Ray with 1 and 2
  actors (``num_cpus=2``), shards of ``--shard-size`` images, fresh output folder each.

Reports images/s and faces/s for each, and Ray's time against the local path. Every
worker uses one torch thread (Ray sets ``OMP_NUM_THREADS=1`` in its workers; the local run
is pinned to one thread too so that "1 worker" compares like with like).

Usage::

    python benchmarks/ray_embed.py --images 96 --json ray.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "exprsim" / "samples"


def make_inputs(folder: Path, n: int) -> list[str]:
    photos = sorted(SAMPLES.glob("*.jpg"))
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        link = folder / f"img_{i:05d}.jpg"
        if not link.exists():
            link.symlink_to(photos[i % len(photos)])
        out.append(str(link))
    return out


def main() -> None:
    import torch

    from exprsim.apps.embed import embed_files
    from exprsim.models.embedder import load_model
    from exprsim.scale.ray_embed import embed_with_ray

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=96)
    ap.add_argument("--shard-size", type=int, default=16)
    ap.add_argument("--workdir", default="/tmp/exprsim_ray_bench")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    work = Path(args.workdir)
    inputs = make_inputs(work / "in", args.images)
    results: dict[str, Any] = {"images": args.images, "shard_size": args.shard_size}

    torch.set_num_threads(1)
    embedder = load_model()
    embed_files(inputs[:2], embedder=embedder)  # warm-up: detector and model loaded
    t0 = time.perf_counter()
    table = embed_files(inputs, embedder=embedder)
    sec = time.perf_counter() - t0
    results["local"] = {
        "seconds": round(sec, 1),
        "images_per_s": round(args.images / sec, 2),
        "faces": len(table.rows),
    }
    for workers in (1, 2):
        out = work / f"out{workers}"
        shutil.rmtree(out, ignore_errors=True)
        rep = embed_with_ray(
            inputs, out, num_workers=workers, shard_size=args.shard_size, num_cpus=2,
            progress=False,
        )  # fmt: skip
        results[f"ray-{workers}"] = {
            "seconds": round(rep.seconds, 1),
            "images_per_s": round(rep.images_per_second, 2),
            "faces": rep.faces,
            "vs_local": round(rep.seconds / sec, 2),
        }
    print(json.dumps(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
