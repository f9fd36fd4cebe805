"""``exprsim demo``: the main job on the bundled sample photos."""

from __future__ import annotations

import argparse
from typing import Any

from exprsim.cli.argtypes import command_parsers
from exprsim.errors import printable
from exprsim.wording import count


def register(sub: Any) -> None:
    command_parsers(sub)
    p = sub.add_parser(
        "demo",
        help="run the main job on the bundled sample photos",
        description="Run the main job on the bundled sample photos (faces, embeddings, "
        "index and search, album summary) and on the bundled clip, and write "
        "a self-contained page, index.html, with the files it shows, into --out.",
    )
    p.add_argument(
        "--out", default="demo-output", metavar="DIR", help="output folder (default demo-output)"
    )
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from exprsim.cli.argtypes import require_paths, require_writable
    from exprsim.demo import run_demo

    require_paths([args.out], "--out")  # blank: the working folder
    require_writable(args.out, "--out", folder=True)
    res = run_demo(args.out, progress=not args.quiet)
    print(
        f"{count(res.n_faces, 'face')} in {count(res.n_images, 'photo')} -> {printable(str(res.html))}"
    )
    return 0
