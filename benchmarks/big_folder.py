"""Big folders: ``exprsim embed`` and ``exprsim index add`` on thousands of photos.

Builds a folder of ``N`` photos (hard links to the 8 sample stills letterboxed to 640x480
JPEGs, so every file is a real photo with one face and the folder costs no disk), then runs
each command in a child process for each ``N`` and reports its wall time, faces/s and peak
RSS (``ru_maxrss`` of that child, from ``wait4``). Memory is bounded when the peak RSS at
the largest ``N`` stays close to the smallest.

Usage (about 8 minutes on 2 cores with the defaults)::

    .venv/bin/python benchmarks/big_folder.py [--sizes 1000 10000] [--commands embed index]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXPRSIM = Path(sys.executable).with_name("exprsim")


def make_folder(n: int, out: Path) -> Path:
    """``n`` photos under ``out`` (100 per subfolder), hard links to 8 letterboxed stills."""
    from PIL import Image

    from exprsim.samples import sample_images

    src = out / "_src"
    src.mkdir(parents=True, exist_ok=True)
    stills = []
    for i, path in enumerate(p for p in sample_images() if p.suffix == ".jpg"):
        im = Image.open(path).convert("RGB")
        im.thumbnail((640, 480))
        canvas = Image.new("RGB", (640, 480))
        canvas.paste(im, ((640 - im.width) // 2, (480 - im.height) // 2))
        dst = src / f"still{i}.jpg"
        canvas.save(dst, quality=90)
        stills.append(dst)
    folder = out / f"photos_{n}"
    for k in range(n):
        sub = folder / f"{k // 100:04d}"
        sub.mkdir(parents=True, exist_ok=True)
        os.link(stills[k % len(stills)], sub / f"p{k:05d}.jpg")
    return folder


def run_child(argv: list[str]) -> dict:
    """Run a command; its wall time, peak RSS (MB), exit code and last output line."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    last = out.strip().splitlines()[-1] if out.strip() else ""
    return {
        "wall_s": wall,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "rc": proc.returncode,
        "says": last,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--commands", nargs="+", choices=("embed", "index"), default=["embed", "index"])
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="exprsim-big-") as tmp:
        for n in args.sizes:
            folder = make_folder(n, Path(tmp))
            for cmd in args.commands:
                if cmd == "embed":
                    argv_ = [str(EXPRSIM), "-q", "embed", str(folder), "-o", f"{tmp}/e{n}.parquet"]
                else:
                    argv_ = [
                        str(EXPRSIM),
                        "-q",
                        "index",
                        "add",
                        str(folder),
                        "--db",
                        f"{tmp}/i{n}.db",
                    ]
                res = {"command": cmd, "photos": n, **run_child(argv_)}
                print(
                    f"{cmd} {n} photos: rc {res['rc']}, wall {res['wall_s']:.1f} s, "
                    f"{n / res['wall_s']:.1f} photos/s, peak RSS {res['peak_rss_mb']:.0f} MB; "
                    f"says: {res['says']}"
                )
                results.append(res)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
