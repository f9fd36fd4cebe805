"""``exprsim detectors`` and ``exprsim faces``: thin shells over :mod:`exprsim.faces`."""

from __future__ import annotations

import argparse
import sys
from contextlib import nullcontext
from typing import Any

from exprsim.cli.argtypes import (
    expand_image_paths,
    int_at_least,
    require_distinct_outputs,
    require_writable,
)
from exprsim.cli.exitcodes import failure_exit_code
from exprsim.errors import ExprsimError
from exprsim.faces.detect import DEFAULT_DETECTOR


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "detectors",
        help="list face detector backends and whether they are installed",
        description="List face detector backends: name, available here, description.",
    )
    p.set_defaults(func=cmd_detectors)

    p = subparsers.add_parser(
        "faces",
        help="detect, align and score faces in images",
        description=(
            "Detect every face, mark 5 landmarks, align it to the FER2013-framed template and "
            "score its quality. One output row per face. Folders are searched recursively. "
            "Unreadable files are reported on stderr, one line each; the exit code is non-zero "
            "only if every input failed (with --strict: if any failed)."
        ),
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    p.add_argument(
        "--detector", default=DEFAULT_DETECTOR, help="detector backend (see `exprsim detectors`)"
    )
    p.add_argument(
        "--out",
        metavar="FILE",
        help="write the table to FILE (.csv, .parquet, .jsonl or .json); default: CSV on stdout",
    )
    p.add_argument("--crops", metavar="DIR", help="write the aligned crops to DIR as PNG")
    p.add_argument(
        "--size",
        type=int_at_least(8, 2048),
        default=112,
        help="aligned crop side in pixels, 8..2048 (default 112)",
    )
    p.add_argument("--strict", action="store_true", help="fail if any input cannot be read")
    p.set_defaults(func=cmd_faces)


def cmd_detectors(args: argparse.Namespace) -> int:
    from exprsim.faces.detect import detector_info

    rows = detector_info()
    width = max(len(r.name) for r in rows)
    print(f"{'name':<{width}}  available  description")
    for r in rows:
        print(f"{r.name:<{width}}  {'yes' if r.available else 'no':<9}  {r.description}")
        if not r.available:
            print(f"{'':<{width}}  {'':<9}  ({r.install})")
    return 0


def cmd_faces(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from exprsim.faces.align import AlignConfig
    from exprsim.faces.detect import check_detector
    from exprsim.faces.pipeline import analyze_files
    from exprsim.interrupts import hold_interrupts
    from exprsim.io import check_table_path

    if args.out:
        check_table_path(args.out)
        require_writable(args.out, "--out")  # a folder, say: refused before the work
    files = expand_image_paths(args.paths)  # a blank PATH refused, a file named twice once
    require_distinct_outputs([("--out", args.out)], [("an input image", f) for f in files])
    check_detector(args.detector)  # an unknown or missing detector fails before any work

    def report(name: str, exc: ExprsimError) -> None:
        tqdm.write(f"exprsim faces: {exc}", file=sys.stderr)

    table = analyze_files(
        files,
        detector=args.detector,  # by name: each front-end thread builds its own
        align_config=AlignConfig(size=args.size),
        crops_dir=args.crops,
        progress=len(files) > 1 and not args.quiet,
        on_error=report,
        keep_on_interrupt=True,  # Ctrl-C: the faces of the files done are written
    )
    # after a Ctrl-C, a second one must not lose the faces being written
    with hold_interrupts("the faces table") if table.interrupted else nullcontext():
        if table.errors and not table.rows and len(table.errors) == table.files and args.out:
            # every input failed: an earlier run's table is left as it was
            print(f"exprsim faces: no file could be read; {args.out} not written", file=sys.stderr)
        elif args.out:
            table.save(args.out)
        else:
            table.to_frame().to_csv(sys.stdout, index=False)
    if table.interrupted:
        where = f" -> {args.out}" if args.out else ""
        print(
            f"exprsim faces: interrupted: {len(table.rows)} faces of the files done saved{where}",
            file=sys.stderr,
        )
        return 130
    if not args.quiet:
        print(
            f"exprsim faces: {table.files} files, {len(table.rows)} faces, "
            f"{len(table.errors)} unreadable" + (f"; wrote {args.out}" if args.out else ""),
            file=sys.stderr,
        )
    return failure_exit_code(len(table.errors), table.files, args.strict)
