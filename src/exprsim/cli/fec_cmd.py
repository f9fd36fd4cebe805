"""``exprsim fec fetch | crop | stats``: thin shells over :mod:`exprsim.fec` and :mod:`exprsim.data.fec`.

``fetch`` downloads the images of FEC CSVs (the one user-invoked download in exprsim) and,
with ``--crop``, then runs ``crop`` on the same folder; ``crop`` can also be run on its own
(e.g. again with another detector or size into another ``--out``). Training and evaluation
go through ``exprsim train --config configs/fec-*.json`` and
``exprsim evaluate --fec-test CSV --fec-crops DIR``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from exprsim.cli.argtypes import command_parsers, float_in, int_at_least, require_writable
from exprsim.errors import ExprsimError, printable
from exprsim.faces.detect import DEFAULT_DETECTOR

#: longest delay or timeout an option takes, in seconds: ``exprsim.fec.fetch.MAX_SECONDS``
#: (not imported here, so that building the parser stays light)
MAX_SECONDS = 86400.0
#: largest ``--margin``: ``exprsim.fec.crops.MAX_MARGIN``
MAX_MARGIN = 10.0
#: ``--size`` range: ``exprsim.fec.crops.MIN_SIZE`` / ``MAX_SIZE``
MIN_SIZE, MAX_SIZE = 16, 512
#: the crop options and their defaults (``fec fetch`` takes them with ``--crop`` only)
CROP_DEFAULTS: dict[str, Any] = {
    "size": 112,
    "margin": 0.5,
    "detector": DEFAULT_DETECTOR,
    "crop_workers": 1,
}


def register(subparsers: Any) -> None:
    command_parsers(subparsers)
    fec = subparsers.add_parser(
        "fec",
        help="rebuild the FEC dataset (FECNet, CVPR 2019): fetch images, crop faces, stats",
        description="Rebuild the Google FEC dataset from its CSV files and inspect them.",
    )
    sub = fec.add_subparsers(dest="fec_command", metavar="SUBCOMMAND")
    fec.set_defaults(func=lambda args: _help(fec))
    _register_fetch(sub)

    p = sub.add_parser(
        "crop",
        help="crop, detect and align the fetched faces into shards",
        description=(
            "Cut each face by its FEC box (plus a margin), detect and align it with exprsim's "
            "aligner (falling back to box-based alignment when no face is found; counted), and "
            "write the aligned crops into DATA/crops, or into --out itself (shard-*.npy + "
            "index.sqlite). Resumable."
        ),
    )
    p.add_argument("csv", nargs="+", metavar="CSV", help="FEC CSV file(s) given to fetch")
    p.add_argument(
        "--data",
        required=True,
        metavar="DATA",
        help="fetch folder (from `exprsim fec fetch --out`)",
    )
    _crop_args(p, with_out=True)
    p.set_defaults(func=cmd_crop)

    p = sub.add_parser(
        "stats",
        help="rows, triplet types, rater agreement and human baseline of an FEC CSV",
        description="Summarise any FEC-format CSV; malformed rows are listed with line numbers.",
    )
    p.add_argument("csv", metavar="CSV", help="an FEC-format CSV file")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument(
        "--max-issues",
        type=int_at_least(0),
        default=10,
        help="malformed rows to list (default 10)",
    )
    p.set_defaults(func=cmd_stats)


def _register_fetch(sub: Any) -> None:
    """``exprsim fec fetch`` and its options (every number range-checked by argparse)."""
    p = sub.add_parser(
        "fetch",
        help="download the images of FEC CSVs (resumable; SQLite manifest)",
        description=(
            "Download every image referenced by the FEC CSVs into DIR/images, recording each URL "
            "in DIR/manifest.sqlite. Re-running fetches only what is missing; Ctrl-C or kill "
            "loses nothing already fetched. Prints an availability report (also DIR/fetch_report.json)."
        ),
    )
    p.add_argument("csv", nargs="+", metavar="CSV", help="FEC CSV file(s) (train and/or test)")
    p.add_argument("--out", required=True, metavar="DIR", help="fetch folder")
    p.add_argument(
        "--workers", type=int_at_least(1), default=16, help="download threads (default 16)"
    )
    p.add_argument(
        "--per-host",
        type=int_at_least(1),
        default=4,
        help="simultaneous requests per host (default 4)",
    )
    p.add_argument(
        "--host-delay",
        type=float_in(0.0, MAX_SECONDS),
        default=0.0,
        help="seconds between requests to one host, at most 86,400 (default 0)",
    )
    p.add_argument(
        "--timeout",
        type=float_in(0.0, MAX_SECONDS, lo_open=True),
        default=20.0,
        help="connect/read timeout in seconds, > 0 and at most 86,400 (default 20)",
    )
    p.add_argument(
        "--retries",
        type=int_at_least(0),
        default=3,
        help="retries after transient failures (default 3)",
    )
    p.add_argument(
        "--backoff",
        type=float_in(0.0, MAX_SECONDS),
        default=1.0,
        help="first retry delay in seconds, doubled at each retry, at most 86,400 (default 1)",
    )
    p.add_argument(
        "--retry-failed", action="store_true", help="also retry permanent failures of earlier runs"
    )
    p.add_argument(
        "--max-connect-failures",
        type=int_at_least(0),
        default=50,
        metavar="N",
        help="stop when N downloads, to N hosts or to every host, failed to connect and no "
        "connection succeeded: no network? (default 50; 0: never stop)",
    )
    p.add_argument(
        "--min-side",
        type=int_at_least(0),
        default=32,
        help="reject images with a shorter side, in pixels (default 32)",
    )
    p.add_argument(
        "--crop", action="store_true", help="then crop and align the faces (as `exprsim fec crop`)"
    )
    _crop_args(p, with_out=False)
    p.set_defaults(func=cmd_fetch)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _crop_args(p: argparse.ArgumentParser, with_out: bool) -> None:
    """The crop options; ``fec fetch`` (``with_out`` false) leaves them ``None`` when not
    given, so that it can refuse them without ``--crop`` (they were ignored)."""
    if with_out:
        p.add_argument("--out", metavar="DIR", help="crops folder itself (default DATA/crops)")

    def default(name: str) -> Any:
        return CROP_DEFAULTS[name] if with_out else None

    p.add_argument(
        "--size",
        type=int_at_least(MIN_SIZE, MAX_SIZE),
        default=default("size"),
        help=f"aligned crop side in pixels, {MIN_SIZE} to {MAX_SIZE} (default 112, what the "
        "FEC configs train on)",
    )
    p.add_argument(
        "--margin",
        type=float_in(0.0, MAX_MARGIN),
        default=default("margin"),
        help="context around the box, fraction of its size, 0 to 10 (default 0.5)",
    )
    p.add_argument(
        "--detector",
        default=default("detector"),
        help=f"detector backend (see `exprsim detectors`; default {DEFAULT_DETECTOR}), or "
        "'none' to align by the boxes only",
    )
    p.add_argument(
        "--crop-workers",
        type=int_at_least(1),
        default=default("crop_workers"),
        help="cropping processes (default 1)",
    )


def _crop_config(args: argparse.Namespace) -> Any:
    """The :class:`~exprsim.fec.crops.CropConfig` of the crop options, its detector name
    checked (``none``, or a registered backend that can run here)."""
    from exprsim.fec.crops import CropConfig, check_detector_name

    given = {k: getattr(args, k) for k in CROP_DEFAULTS}
    opts = {k: CROP_DEFAULTS[k] if v is None else v for k, v in given.items()}
    try:
        cfg = CropConfig(
            size=opts["size"],
            margin=opts["margin"],
            detector=opts["detector"],
            workers=opts["crop_workers"],
        )
    except ValueError as exc:
        raise ExprsimError(str(exc)) from exc
    check_detector_name(cfg.detector)
    return cfg


def _refuse_crop_options(args: argparse.Namespace) -> None:
    """``fec fetch`` without ``--crop``: crop options would be ignored; say so."""
    given = [f"--{k.replace('_', '-')}" for k in CROP_DEFAULTS if getattr(args, k) is not None]
    if given:
        raise ExprsimError(
            f"{', '.join(given)} only {'apply' if len(given) > 1 else 'applies'} with "
            "--crop (or later to `exprsim fec crop`)"
        )


def cmd_fetch(args: argparse.Namespace) -> int:
    from exprsim.fec.crops import (
        BUSY_ADVICE,
        CROPS_DIR,
        StoreBusyError,
        build_crops,
        check_store_free,
    )
    from exprsim.fec.fetch import FetchConfig, fetch_fec

    try:
        cfg = FetchConfig(
            workers=args.workers,
            per_host=args.per_host,
            host_delay=args.host_delay,
            timeout=args.timeout,
            retries=args.retries,
            backoff=args.backoff,
            retry_failed=args.retry_failed,
            min_side=args.min_side,
            max_connect_failures=args.max_connect_failures,
        )
    except ValueError as exc:
        raise ExprsimError(str(exc)) from exc
    if not args.crop:
        _refuse_crop_options(args)
    # before anything is downloaded: a bad detector name was refused after the download
    crop_cfg = _crop_config(args) if args.crop else None
    require_writable(args.out, "--out", folder=True)  # before the CSVs are read
    if crop_cfg is not None:  # a crop run into DIR/crops: said after the whole download
        check_store_free(Path(args.out) / CROPS_DIR, BUSY_ADVICE["fetch"])
    try:
        report = fetch_fec(args.csv, args.out, cfg, progress=not args.quiet)
    except KeyboardInterrupt as exc:  # what was fetched is committed: say how much
        return _interrupted(args, exc, args.out)
    print(report.to_text())
    # the report is kept; one line says why the exit code is 1
    why = report.stopped or report.nothing_fetched()
    if not why and not report.n_urls:
        why = _no_valid_triplet(args.csv, "image")
    if why:
        print(f"exprsim fec fetch: {why}", file=sys.stderr)
    if crop_cfg is None or not report.n_ok:
        return 1 if why or not report.n_ok else 0
    try:
        crops = build_crops(args.csv, args.out, config=crop_cfg, progress=not args.quiet)
    except StoreBusyError as exc:  # one started during the download: the advice of fetch
        raise StoreBusyError(exc.folder, BUSY_ADVICE["fetch"], exc.holder) from None
    except KeyboardInterrupt as exc:
        return _interrupted(args, exc, args.out, Path(args.out) / CROPS_DIR)
    print(crops.to_text())
    if crops.n_indexed == 0:  # as `fec crop` (it said 0 for the same failure)
        print("exprsim fec fetch: no face could be cropped", file=sys.stderr)
        return 1
    return 1 if why else 0


def _no_valid_triplet(csvs: Sequence[str], what: str) -> str:
    """Why `fec fetch` / `fec crop` did nothing: the CSVs name no ``what`` (no valid
    triplet)."""
    names = ", ".join(printable(str(c)) for c in csvs)
    verb = "names" if len(csvs) == 1 else "name"
    return f"{names} {verb} no {what} (no valid triplet: see `exprsim fec stats`)"


def cmd_crop(args: argparse.Namespace) -> int:
    from exprsim.fec.crops import CROPS_DIR, build_crops

    data = Path(args.data)
    if not data.is_dir():
        why = "is a file" if data.exists() else "does not exist"
        raise ExprsimError(f"--data {data} {why}: give the folder of `exprsim fec fetch --out`")
    out = args.out or data / CROPS_DIR
    require_writable(out, "--out", folder=True)
    try:
        report = build_crops(
            args.csv, args.data, args.out, config=_crop_config(args), progress=not args.quiet
        )
    except KeyboardInterrupt as exc:  # every full shard, and the last one, is written
        return _interrupted(args, exc, None, out)
    print(report.to_text())
    if report.n_indexed == 0:  # not one crop to train or evaluate on: a failure
        why = "no face could be cropped"
        if report.n_faces == 0:  # as `fec fetch` says it
            why = _no_valid_triplet(args.csv, "face")
        print(f"exprsim fec crop: {why}", file=sys.stderr)
        return 1
    return 0


def _interrupted(
    args: argparse.Namespace,
    exc: KeyboardInterrupt,
    fetch_dir: str | None,
    crops_dir: str | Path | None = None,
) -> int:
    """Ctrl-C or SIGTERM during ``fec fetch`` / ``fec crop``: say what the fetch folder
    (images) and the crops folder (crops) keep and how to go on, in one line on stderr;
    exit code 130 (143 for SIGTERM)."""
    from exprsim.fec.crops import count_crops
    from exprsim.fec.fetch import count_fetched
    from exprsim.interrupts import interruption
    from exprsim.wording import count

    word, code = interruption(exc)
    kept = []
    if fetch_dir is not None:
        n = count_fetched(fetch_dir) or 0
        kept.append(f"{count(n, 'image')} fetched in {printable(str(fetch_dir))}")
    if crops_dir is not None:
        n = count_crops(crops_dir) or 0
        kept.append(f"{count(n, 'crop')} in {printable(str(crops_dir))}")
    print(
        f"exprsim fec {args.fec_command}: {word}: {' and '.join(kept)} kept; run the same "
        "command again to go on (done work is not done again)",
        file=sys.stderr,
    )
    return code


def cmd_stats(args: argparse.Namespace) -> int:
    from exprsim.data.fec import fec_stats
    from exprsim.fec.dataset import repeated_rows
    from exprsim.fec.fetch import read_fec_csv

    table = read_fec_csv(args.csv)  # /dev/null: not a regular file (was "no such file")
    stats = fec_stats(table)
    repeats = repeated_rows(table)
    if args.json:
        from exprsim.io import json_text

        print(json_text(stats.to_dict() | repeats), end="")  # strict: NaN as null
    else:
        print(stats.to_text(max_issues=args.max_issues))
        if repeats["duplicate_rows"]:
            print(
                f"  duplicate rows: {repeats['duplicate_rows']} (a row equal to an earlier one; "
                "every copy is counted above, the human baseline included)"
            )
        if repeats["repeated_raters"]:
            print(
                f"  rows where one rater votes more than once: {repeats['repeated_raters']} "
                "(each vote is counted)"
            )
    if stats.rows == 0:  # the report is printed, but a file with no triplet is a failure
        empty = Path(args.csv).stat().st_size == 0
        what = "an empty file" if empty else "no valid triplet"
        print(f"exprsim fec stats: {printable(args.csv)}: {what}", file=sys.stderr)
        return 1
    return 0
