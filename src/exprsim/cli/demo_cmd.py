"""``exprsim demo``: the main job on the bundled sample photos."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="run the main job on the bundled sample photos")
    p.add_argument("--out", default="demo-output", help="output folder (default demo-output)")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from exprsim.cli.argtypes import require_paths, require_writable
    from exprsim.demo import run_demo

    require_paths([args.out], "--out")  # blank: the working folder
    require_writable(args.out, "--out", folder=True)
    res = run_demo(args.out, progress=not args.quiet)
    print(f"{res.n_faces} faces in {res.n_images} photos -> {res.html}")
    return 0
