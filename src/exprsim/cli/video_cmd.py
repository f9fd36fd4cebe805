"""``exprsim video``: a thin shell over :func:`exprsim.video.analyze_video`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from exprsim.cli.argtypes import (
    MODEL_HELP,
    command_parsers,
    db_inputs,
    detector_help,
    float_in,
    int_at_least,
    model_inputs,
    require_distinct_outputs,
    require_paths,
    require_writable,
)
from exprsim.errors import ExprsimError, printable
from exprsim.faces.detect import DEFAULT_DETECTOR
from exprsim.faces.quality import MAX_YAW
from exprsim.video.frames import DEFAULT_FPS, MAX_FPS, MAX_FRAME_PIXELS, MIN_FPS
from exprsim.video.tracks import DEFAULT_EPS, DEFAULT_MIN_SAMPLES
from exprsim.wording import count

#: defaults of the options that apply only with another one (:func:`_check_combinations`)
DEFAULT_NEUTRAL = "auto"


def register(subparsers: Any) -> None:
    command_parsers(subparsers)
    p = subparsers.add_parser(
        "video",
        help="analyse the faces and expressions of a video (tables + HTML report)",
        description=(
            "Sample frames (5 fps by default), detect, align and score every face, group "
            "faces into persons (dlib descriptors + DBSCAN, or IoU tracks without dlib), "
            "embed and median-smooth expressions, and write faces.parquet, faces.csv, "
            "persons.csv, analysis.json and a self-contained report.html into --out. "
            "Ctrl-C (or SIGTERM) stops the analysis, while reading or in a later stage, and "
            "writes a partial report of what is complete (exit code 130; 143 for SIGTERM, "
            "129 for SIGHUP); "
            "a Ctrl-C while the report is written is held until it is complete."
        ),
    )
    p.add_argument(
        "input", metavar="INPUT", help="video file (mp4, webm, mov, avi, ...) or folder of frames"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--fps",
        type=float_in(MIN_FPS, MAX_FPS),
        default=DEFAULT_FPS,
        help=f"sampled frames per second of a video file, {MIN_FPS:g} to {MAX_FPS:g} (default "
        f"{DEFAULT_FPS:g}); a folder "
        "of frames uses every frame unless --every is given",
    )
    p.add_argument(
        "--every",
        type=int_at_least(1),
        metavar="N",
        help="sample every N-th frame instead of --fps",
    )
    p.add_argument(
        "--max-frames", type=int_at_least(1), metavar="N", help="stop after N sampled frames"
    )
    p.add_argument(
        "--source-fps",
        type=float_in(0.0, MAX_FPS, lo_open=True),
        metavar="FPS",
        help=f"frame rate, > 0 and at most {MAX_FPS:g}, of a video that declares none (raw "
        ".h264/.h265/.hevc streams: "
        "otherwise 25 fps is assumed, with a warning) or of a folder of frames (default 25); "
        "a file that declares its rate keeps it",
    )
    p.add_argument(
        "--max-pixels",
        type=int_at_least(1),
        default=MAX_FRAME_PIXELS,
        metavar="N",
        help="refuse a video (or frames) of more than N pixels per frame, before decoding it "
        f"(default {MAX_FRAME_PIXELS:,}: 8K video passes)",
    )
    _face_args(p)
    _expression_args(p)
    p.set_defaults(func=cmd_video)


def _face_args(p: argparse.ArgumentParser) -> None:
    """Detection, quality, tags, persons, smoothing, summaries."""
    p.add_argument("--detector", default=DEFAULT_DETECTOR, help=detector_help())
    p.add_argument("--tags", metavar="DB", help="face database holding tag reference faces")
    p.add_argument(
        "--tag-threshold",
        type=float_in(0.0, 2.0, lo_open=True),
        default=None,
        help="tag distance, in (0, 2], with --tags (default: the model's calibrated threshold)",
    )
    p.add_argument(
        "--min-sharpness",
        type=float_in(0.0),
        default=3.0,
        help="sharpness threshold of the quality check (default 3.0)",
    )
    p.add_argument(
        "--max-yaw",
        type=float_in(0.0, MAX_YAW),
        default=50.0,
        help=f"largest |yaw| in degrees of the quality check, 0 to {MAX_YAW:g} (default 50)",
    )
    p.add_argument(
        "--identity",
        choices=("auto", "dlib", "iou"),
        default="auto",
        help="person grouping: dlib descriptors + DBSCAN, or IoU tracks (default auto: dlib "
        "if installed)",
    )
    p.add_argument(
        "--eps",
        type=float_in(0.0, lo_open=True),
        default=None,  # None: DEFAULT_EPS; given with --identity iou, refused
        help=f"DBSCAN radius of the person grouping (dlib; default {DEFAULT_EPS:g})",
    )
    p.add_argument(
        "--min-samples",
        type=int_at_least(1),
        default=None,  # None: DEFAULT_MIN_SAMPLES; given with --identity iou, refused
        help=f"DBSCAN min_samples of the person grouping (dlib; default {DEFAULT_MIN_SAMPLES})",
    )
    p.add_argument(
        "--smooth",
        type=int_at_least(1),
        default=3,
        help="median window in sampled faces, odd (default 3; 1: no smoothing)",
    )
    p.add_argument(
        "-n",
        "--clusters",
        type=int_at_least(1),
        default=10,
        help="summary clusters per person (default 10)",
    )


def _expression_args(p: argparse.ArgumentParser) -> None:
    """The model and the expression space of the summaries."""
    p.add_argument("--model", default="default", help=MODEL_HELP)
    p.add_argument(
        "--embedding",
        choices=("model", "pvae"),
        default="model",
        help="expression space of the per-person summaries: the embedding model (the "
        "default), or perceptual-VAE codes of face meshes with the person's neutral face "
        "removed (needs --pvae-model)",
    )
    p.add_argument(
        "--pvae-model",
        metavar="DIR",
        help="perceptual-VAE run folder (exprsim train --config configs/pvae-m2.json, in a clone "
        "of the source repository)",
    )
    p.add_argument(
        "--neutral",
        choices=("auto", "none"),
        default=DEFAULT_NEUTRAL,
        help="pvae: estimate each person's neutral face from the kNN emotions (auto, the "
        "default) or use the model's fallback neutral face (none)",
    )
    p.add_argument(
        "--redetect-every",
        type=int_at_least(1),
        default=5,
        metavar="N",
        help="full face detection on every N-th sampled frame; the others search near the "
        "faces already found (a new face is found within N frames, then searched for in "
        "the frames before, which wait in memory: at most 256 MB of frames, 4 at least; "
        "1 = full detection on every frame; default 5)",
    )


def _check(args: argparse.Namespace) -> None:
    require_paths([args.input], "INPUT")  # "" would be the working folder, read as frames
    if not Path(args.input).exists():
        raise ExprsimError(f"{args.input}: no such file or folder")
    require_paths([args.out], "--out")
    require_writable(args.out, "--out", folder=True)  # before hours of decoding, not after
    from exprsim.video.pipeline import REPORT_FILES, finish_killed_saves

    finish_killed_saves(args.out)  # a report whose save was killed among its renames
    for name in REPORT_FILES.values():  # a report file moves in by a rename: not onto a folder
        if Path(args.out, name).is_dir():
            raise ExprsimError(
                f"--out {printable(str(args.out))}: {name} there is a folder, where the "
                "report writes a file; move it away (nothing was done)"
            )

    require_distinct_outputs(  # the video, or the --tags database, is not overwritten
        [("--out", Path(args.out, name)) for name in REPORT_FILES.values()],
        [("the input video", args.input), *db_inputs(args.tags), *model_inputs(args.model)],
    )
    _check_not_theirs(Path(args.out), str(args.input))
    if args.every is not None and args.every < 1:
        raise ExprsimError(f"--every must be >= 1, got {args.every}")
    if not args.fps > 0:
        raise ExprsimError(f"--fps must be > 0, got {args.fps}")
    small = args.min_samples is not None and args.min_samples < 1
    if args.clusters < 1 or args.smooth < 1 or small:
        raise ExprsimError("--clusters, --smooth and --min-samples must be >= 1")
    if args.smooth % 2 == 0:  # a median window has a middle face
        raise ExprsimError(
            f"--smooth must be odd (a window centred on each face), got {args.smooth}"
        )
    if args.embedding == "pvae" and not args.pvae_model:
        raise ExprsimError(
            "--embedding pvae needs --pvae-model DIR (train one in a clone of the source "
            "repository: `exprsim train --config configs/pvae-m2.json --out runs/pvae-m2`)"
        )
    if args.pvae_model and args.embedding != "pvae":
        raise ExprsimError("--pvae-model is only used with --embedding pvae")
    _check_combinations(args)


def _check_combinations(args: argparse.Namespace) -> None:
    """Refuse an option that another one makes useless (it would be silently ignored); an
    option left at its default never trips these."""
    if args.tag_threshold is not None and not args.tags:
        raise ExprsimError("--tag-threshold is only used with --tags DB")
    if args.neutral != DEFAULT_NEUTRAL and args.embedding != "pvae":
        raise ExprsimError("--neutral is only used with --embedding pvae")
    if args.identity == "iou":  # IoU tracks have no DBSCAN to tune
        for flag, value in (("--eps", args.eps), ("--min-samples", args.min_samples)):
            if value is not None:  # given, even at its default value
                raise ExprsimError(
                    f"{flag} is only used with --identity dlib (or auto), not --identity iou"
                )
    if args.fps != DEFAULT_FPS:
        if args.every is not None:
            raise ExprsimError("--fps and --every exclude each other: give one of them")
        if Path(args.input).is_dir():
            raise ExprsimError(
                "--fps applies to video files: a folder of frames uses every image "
                "(sample it with --every N)"
            )


def cmd_video(args: argparse.Namespace) -> int:
    from exprsim.models.embedder import load_model
    from exprsim.video.pipeline import VideoConfig, analyze_video, load_tag_references

    _check(args)
    embedder = load_model(args.model)
    refs = load_tag_references(args.tags, embedder) if args.tags else None
    config = VideoConfig(
        fps=args.fps,
        every=args.every,
        max_frames=args.max_frames,
        detector=args.detector,
        sharpness_threshold=args.min_sharpness,
        max_abs_yaw=args.max_yaw,
        identity=args.identity,
        eps=DEFAULT_EPS if args.eps is None else args.eps,
        min_samples=DEFAULT_MIN_SAMPLES if args.min_samples is None else args.min_samples,
        smooth_window=args.smooth,
        n_summary=args.clusters,
        tag_threshold=args.tag_threshold,
        embedding=args.embedding,
        pvae_model=args.pvae_model,
        neutral=args.neutral,
        redetect_every=args.redetect_every,
        source_fps=args.source_fps,
        max_pixels=args.max_pixels,
    )
    analysis = analyze_video(
        args.input,
        embedder,
        config,
        tag_references=refs,
        progress=not args.quiet,
        keep_on_interrupt=True,  # the partial report is written
    )
    return _save_report(args, analysis)


def _save_report(args: argparse.Namespace, analysis: Any) -> int:
    """Write the report of a finished or interrupted analysis and say what was done.

    The writing holds a Ctrl-C (or SIGTERM): a complete analysis is not lost to a press
    that lands while its report is rendered; a second press still stops it."""
    from exprsim.interrupts import hold_interrupts, interruption

    out = Path(args.out)
    kept = getattr(analysis, "interrupted", False) and _complete_report(out)
    if kept:  # a stopped run never replaces a complete one: its partial report goes aside
        out = out / INTERRUPTED_REPORT
    try:
        with hold_interrupts("the report") as held:
            paths = analysis.save(out)
    except OSError as exc:  # e.g. the disk filled up, or a folder the checks could not foresee
        # the hidden folder the files were written in is gone: its name would mislead
        if getattr(exc, "moved_into_place", 0):
            left = "some of its files are in place, beside an earlier run's: run it again"
        else:
            left = "the files of an earlier run there are left whole"
        raise ExprsimError(
            f"--out {args.out}: cannot write the report ({exc.strerror or exc}); {left}"
        ) from exc
    accepted = sum(f.quality.ok for f in analysis.faces)
    print(
        f"{count(analysis.n_sampled, 'frame')}, {count(len(analysis.faces), 'face')} "
        f"({accepted} accepted, {len(analysis.faces) - accepted} rejected), "
        f"{count(analysis.n_persons, 'person')} -> {printable(str(paths['html']))}"
    )
    # analysis.warnings were logged as they happened (shown even with -q): not repeated here
    if analysis.interrupted or held:
        word, code = interruption()
        what = "partial report" if analysis.interrupted else "complete report"
        aside = (
            f" into {printable(str(out))}; the complete report of an earlier run in "
            f"{printable(str(args.out))} is kept"
            if kept
            else ""
        )
        print(f"exprsim video: {word}; {what} written{aside}", file=sys.stderr)
        return code
    return 0


#: where an interrupted run's partial report goes when ``--out`` holds a complete one
INTERRUPTED_REPORT = "interrupted"


def _check_not_theirs(out: Path, source: str) -> None:
    """Refuse an ``--out`` folder holding a report's file names (``faces.csv``, ...) that
    no ``exprsim video`` run wrote (no ``analysis.json`` of one), or the complete report
    of another video than ``source``: they were replaced without a word."""
    from exprsim.video.pipeline import REPORT_FILES

    there = [name for name in REPORT_FILES.values() if (out / name).exists()]
    if not there:
        return
    if _video_report(out):
        other = _reported_source(out)
        if other is None or _same_source(other, source) or not _complete_report(out):
            return
        raise ExprsimError(
            f"--out {printable(str(out))}: it holds the report of another video "
            f"({printable(other)}); use another --out, or delete that folder first (nothing "
            "was done)"
        )
    raise ExprsimError(
        f"--out {printable(str(out))}: it holds {', '.join(there)}, which the report "
        "writes, and no exprsim video run wrote them (no analysis.json of one); use another "
        "--out (nothing was done)"
    )


def _reported_source(out: Path) -> str | None:
    """The video the report in ``out`` is of (``None``: not said)."""
    video = _report_info(out).get("video")
    source = video.get("source") if isinstance(video, dict) else None
    return source if isinstance(source, str) and source else None


def _same_source(recorded: str, source: str) -> bool:
    """Whether the video a report names (``recorded``) is ``source``: the same path once
    resolved; or, when ``recorded`` is a relative name that does not resolve from here (a
    report made from another working folder), the same file name (two cameras' GOPR0001.MP4
    in two folders are two videos)."""
    try:
        if os.path.realpath(recorded) == os.path.realpath(source):
            return True
        if os.path.isabs(recorded) or os.path.exists(recorded):
            return False
    except (OSError, ValueError):
        pass
    return os.path.basename(recorded.rstrip("/\\")) == os.path.basename(source.rstrip("/\\"))


def _report_info(out: Path) -> dict[str, Any]:
    """The ``analysis.json`` of the report in ``out`` (``{}``: none, or unreadable)."""
    from exprsim.video.pipeline import REPORT_FILES

    try:
        info = json.loads((out / REPORT_FILES["json"]).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _video_report(out: Path) -> bool:
    """Whether ``out`` holds an ``exprsim video`` report (its ``analysis.json``)."""
    return {"video", "frames_sampled", "persons"} <= _report_info(out).keys()


def _complete_report(out: Path) -> bool:
    """Whether ``out`` holds the report of a run that was not interrupted."""
    return _report_info(out).get("interrupted") is False
