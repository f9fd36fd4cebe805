"""``exprsim detectors`` and ``exprsim faces``: thin shells over :mod:`exprsim.faces`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from exprsim.cli.argtypes import (
    LIST_NOTE,
    add_files_from,
    command_parsers,
    expand_image_paths,
    int_at_least,
    list_inputs,
    listed_inputs,
    require_distinct_outputs,
    require_writable,
)
from exprsim.cli.exitcodes import failure_exit_code, saved_where
from exprsim.errors import ExprsimError, printable
from exprsim.faces.align import MAX_CROP_SIZE
from exprsim.faces.detect import DEFAULT_DETECTOR
from exprsim.wording import count


def register(subparsers: Any) -> None:
    command_parsers(subparsers)
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
            "Unreadable files (and folders that cannot be listed) are reported on stderr, one "
            "line each; the exit code is non-zero only if every input failed (with --strict: "
            "if any failed). Ctrl-C (or SIGTERM) keeps the faces of the files done: written "
            "to --out, or beside an earlier file there as NAME.partial.EXT (exit code 130; "
            "143 for SIGTERM, 129 for SIGHUP)."
        ),
    )
    p.add_argument(
        "paths", nargs="*", metavar="PATH", help=f"image files or folders; - reads {LIST_NOTE}"
    )
    add_files_from(p)
    p.add_argument(
        "--detector",
        default=DEFAULT_DETECTOR,
        help=f"detector backend (see `exprsim detectors`; default {DEFAULT_DETECTOR})",
    )
    p.add_argument(
        "-o",
        "--out",
        metavar="FILE",
        help="write the table to FILE (.csv, .parquet, .jsonl or .json); default: CSV on stdout",
    )
    p.add_argument(
        "--crops",
        metavar="DIR",
        help="write the aligned crops to DIR as PNG (<name>_<face>.png; <name>-2_<face>.png "
        "when a file there is not this photo's crop: it is never replaced) and add a crop "
        "column. `exprsim embed` and `index add` read a crop as a photo (its face found and "
        "aligned again); in Python, exprsim.load_model().embed_crops(crops, reframe=False) "
        "embeds crops without finding their face again",
    )
    p.add_argument(
        "--size",
        type=int_at_least(8, MAX_CROP_SIZE),
        default=None,
        help=f"with --crops: aligned crop side in pixels, 8..{MAX_CROP_SIZE} (default 112)",
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
    from exprsim.io import check_table_path

    if args.out:
        check_table_path(args.out)
        require_writable(args.out, "--out")  # a folder, say: refused before the work
    require_writable(args.crops, "--crops", folder=True)
    if args.size is not None and not args.crops:  # the table is the same at any crop size
        raise ExprsimError("--size is only used with --crops DIR (the crops' side in pixels)")
    paths = listed_inputs(args.paths, args.files_from)  # - and --files-from: lists of paths
    files = expand_image_paths(paths)  # a blank PATH refused, a file named twice once
    require_distinct_outputs(
        [("--out", args.out)],
        [*(("an input image", f) for f in files), *list_inputs(args.files_from)],
    )
    check_detector(args.detector)  # an unknown or missing detector fails before any work

    def report(name: str, exc: ExprsimError) -> None:
        tqdm.write(f"exprsim faces: {exc}", file=sys.stderr)

    table = analyze_files(
        files,
        detector=args.detector,  # by name: each front-end thread builds its own
        align_config=AlignConfig() if args.size is None else AlignConfig(size=args.size),
        crops_dir=args.crops,
        progress=len(files) > 1 and not args.quiet,
        on_error=report,
        keep_on_interrupt=True,  # Ctrl-C: the faces of the files done are written
        named=paths,  # crops of an earlier run found inside a named folder are left out
    )
    return _save_faces(args, table)


def _save_faces(args: argparse.Namespace, table: Any) -> int:
    """Write the faces table (``--out``, else CSV on stdout) and say what was done; an
    interrupted run's table never replaces an earlier one (:func:`save_partial_table`)."""
    from exprsim.interrupts import hold_interrupts, interruption
    from exprsim.io import replace_table, save_partial_table

    failed_all = bool(table.errors) and not table.rows and len(table.errors) == table.files
    written: Path | None = None
    # a Ctrl-C while the table is written (the run complete, or after a first Ctrl-C) must
    # not lose the faces being written
    with hold_interrupts("the faces table") as held:
        if args.out and table.interrupted:
            written = save_partial_table(table.to_frame(), args.out)
        elif args.out and failed_all:
            # every input failed: an earlier run's table is left as it was
            # each failure was said above: unread, or its crops not written (a full disk)
            print(
                f"exprsim faces: every file failed; {printable(str(args.out))} not written",
                file=sys.stderr,
            )
        elif args.out:
            written = replace_table(table.to_frame(), args.out)
        elif not failed_all:  # every input failed (each said above): no header-only table
            table.to_frame().to_csv(sys.stdout, index=False)
    if table.interrupted or held:
        word, code = interruption()
        print(
            f"exprsim faces: {word}: {count(len(table.rows), 'face')} of the files done saved"
            + saved_where(args.out, written),
            file=sys.stderr,
        )
        return code
    if not args.quiet:
        print(
            f"exprsim faces: {count(table.files, 'file')}, {count(len(table.rows), 'face')}, "
            f"{len(table.errors) - len(table.unwritten)} unreadable"
            + (f", {len(table.unwritten)} without their crops" if table.unwritten else "")
            + (f"; wrote {printable(str(written))}" if written else ""),
            file=sys.stderr,
        )
    return _crops_exit_code(table) or failure_exit_code(len(table.errors), table.files, args.strict)


def _crops_exit_code(table: Any) -> int:
    """1 when crops could not be written (a full disk): the output failed, whatever the
    inputs did, so a script does not go on without them; a rerun once there is room
    writes them."""
    if not table.unwritten:
        return 0
    print(
        f"exprsim faces: error: the crops of {count(len(table.unwritten), 'file')} could not be "
        "written (see above); free some space and run the command again",
        file=sys.stderr,
    )
    return 1
