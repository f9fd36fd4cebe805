"""``exprsim index | search | summarize | classify | tag``: thin shells over :mod:`exprsim.index`
and :mod:`exprsim.apps`."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from exprsim.cli.argtypes import (
    DATA_DIR_HELP,
    DB_HELP,
    LIST_NOTE,
    MODEL_HELP,
    add_files_from,
    command_parsers,
    db_inputs,
    detector_help,
    expand_image_paths,
    fer_inputs,
    float_in,
    int_at_least,
    list_inputs,
    listed_inputs,
    model_inputs,
    require_distinct_outputs,
    require_paths,
    require_writable,
)
from exprsim.cli.exitcodes import report_failures, saved_where
from exprsim.config import MAX_SUMMARY_CLUSTERS
from exprsim.errors import ExprsimError, ImageError, printable
from exprsim.faces.quality import MAX_YAW
from exprsim.wording import count

ANN_CHOICES = ("auto", "exact", "faiss-hnsw", "faiss-ivf")
TAG_ACTIONS = ("add", "list", "remove", "calibrate")
ANN_HELP = (
    "nearest-neighbour backend (default: the one last chosen for this index; auto gives "
    "the choice back: exact search below 20,000 faces or without faiss, faiss-ivf above; "
    "a postgresql:// index searches with pgvector's HNSW and takes auto only)"
)


class _StoreGiven(argparse.Action):
    """Store the value, and that it was given (``<dest>_given``): ``--model default`` named
    on the command line is not the same as no ``--model``."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        setattr(namespace, self.dest, values)
        setattr(namespace, f"{self.dest}_given", True)


def _model_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="default", action=_StoreGiven, help=MODEL_HELP)


def _detector_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--detector", default=None, help=detector_help())


def _db_arg(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--db", required=required, metavar="FILE", help=DB_HELP)


def _out_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-o",
        "--out",
        metavar="FILE",
        help="also write the table to FILE (.csv, .parquet, .jsonl, .json)",
    )


def _paths_arg(p: argparse.ArgumentParser, metavar: str = "PATH") -> None:
    """Image PATHs, ``-`` (a list on stdin) and ``--files-from FILE``."""
    p.add_argument(
        "paths", nargs="*", metavar=metavar, help=f"image files or folders; - reads {LIST_NOTE}"
    )
    add_files_from(p)


def register(subparsers: Any) -> None:
    command_parsers(subparsers)
    _register_index(subparsers)
    _register_search(subparsers)
    _register_summarize(subparsers)
    _register_classify(subparsers)
    _register_tag(subparsers)


def _register_index(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "index",
        help="build and inspect a face index (SQLite + ANN)",
        description="Index the faces of photo collections for expression search.",
    )
    isub = p.add_subparsers(dest="index_command", metavar="ACTION")
    a = isub.add_parser(
        "add",
        help="detect, embed and store faces (incremental, resumable)",
        description=(
            "Add every face of the images under PATH to the index. Files already indexed "
            "(same path, with the same size, mtime and change time, or the same content: a "
            "chmod makes a file read again, not embedded) are skipped; a copy of an indexed file under another path is indexed under its own "
            "path with the faces found in the first (not detected again). Each file is stored once done: "
            "an interrupted run (Ctrl-C, SIGTERM) is continued by running the command again."
        ),
    )
    _paths_arg(a)
    a.add_argument(
        "--from-parquet",
        metavar="DIR",
        help="bulk-load embedding shards (`exprsim embed -o file.parquet` columns) instead; "
        "their model is their `model` column's, or --model's when given (checked against it); "
        "shards of another model content than each other's, --model's or the index's are "
        "refused before any is loaded",
    )
    _db_arg(a)
    _model_arg(a)
    _detector_arg(a)
    a.add_argument("--retry-failed", action="store_true", help="retry files that failed before")
    a.add_argument(
        "--prune",
        action="store_true",
        help="also forget indexed files under the FOLDERs given that are no longer there "
        "(deleted, or renamed and indexed again under the new name; without it they stay in "
        "the index and in searches); a folder gone or empty (a drive not mounted) whose faces "
        "carry labels or tags found nowhere else is kept and named, exit 1",
    )
    a.add_argument(
        "--ann",
        choices=ANN_CHOICES,
        default=None,
        help=ANN_HELP,
    )
    a.add_argument(
        "--workers",
        type=int_at_least(1),
        default=None,
        help="face front-end threads (default: the cores this process may use, at most 2)",
    )
    a.set_defaults(func=cmd_index_add)
    a = isub.add_parser(
        "info", help="what the index holds", description="Counts, model and ANN state of an index."
    )
    _db_arg(a)
    a.add_argument("--json", action="store_true", help="print JSON")
    a.add_argument(
        "--failed",
        action="store_true",
        help="also list the files that could not be read, with why "
        "(`index add --retry-failed` tries them again)",
    )
    a.set_defaults(func=cmd_index_info)
    a = isub.add_parser(
        "remove",
        help="forget files (or every file under a folder), with their labels and tags",
        description="Remove the faces of the given files, or of every file under a folder "
        "(a folder no longer there too), with their labels and tags.",
    )
    a.add_argument("paths", nargs="+", metavar="PATH", help="indexed files or folders")
    _db_arg(a)
    a.set_defaults(func=cmd_index_remove)
    _register_index_repairs(isub)
    p.set_defaults(func=lambda args, parser=p: _usage(parser))


def _register_index_repairs(isub: Any) -> None:
    """``index rebuild`` and ``index reembed``."""
    a = isub.add_parser(
        "rebuild",
        help="rebuild the ANN index from the database",
        description="Rebuild the nearest-neighbour index from the faces in the database.",
    )
    _db_arg(a)
    a.add_argument(
        "--ann",
        choices=ANN_CHOICES,
        default=None,
        help=ANN_HELP,
    )
    a.set_defaults(func=cmd_index_rebuild)
    a = isub.add_parser(
        "reembed",
        help="re-embed every stored face with the current model (after an upgrade)",
        description=(
            "Re-embed every face and tag reference face of an index from its stored crop "
            "with --model (default: the current default model), without the photos, and "
            "make that the index's model: an index built before a model upgrade can be "
            "searched and added to again. All or nothing: an interrupted run leaves the "
            "index as it was. Labels and tags are kept as they are (`exprsim tag --index "
            "--db DB`, with the same --model, recomputes the reference tags with the new "
            "model). Faces indexed without crops cannot be re-embedded. Crops keep the "
            "alignment they were made with: from an index of an exprsim before 2026-12-01, "
            "embeddings differ from those of the photos indexed again by up to about 0.1 "
            "(`index add` into a new database matches exactly)."
        ),
    )
    _db_arg(a)
    _model_arg(a)
    a.add_argument(
        "--force",
        action="store_true",
        help="re-embed even when the index is already of that model",
    )
    a.set_defaults(func=cmd_index_reembed)


def _register_search(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "search",
        help="faces with the most similar expression to a query face",
        description="Nearest indexed faces by expression (Euclidean distance of embeddings).",
    )
    p.add_argument(
        "query",
        metavar="QUERY",
        help="query image (its largest face that passes the quality check, or the one --face "
        "picks)",
    )
    _db_arg(p)
    p.add_argument("-k", type=int_at_least(1), default=20, help="number of results (default 20)")
    p.add_argument(
        "--face",
        type=int_at_least(0),
        default=None,
        help="which face of the query, largest first (0: the largest; default: the largest "
        "that passes the quality check, else the largest)",
    )
    p.add_argument(
        "--include-same-image",
        action="store_true",
        help="keep faces of the query's own image (the same file, or a copy of it: same content)",
    )
    p.add_argument(
        "--exclude-same-identity",
        action="store_true",
        help="drop faces of the same person (needs dlib)",
    )
    p.add_argument("--quality-ok", action="store_true", help="only faces passing the quality check")
    p.add_argument(
        "--min-sharpness",
        type=float_in(0.0),
        help="only faces at least this sharp (the sharpness column, >= 0; the quality check "
        "takes 3.0)",
    )
    p.add_argument(
        "--max-yaw",
        type=float_in(0.0, MAX_YAW),
        help=f"only faces turned at most this many degrees (0 to {MAX_YAW:g})",
    )
    p.add_argument("--html", metavar="FILE", help="write a self-contained HTML report")
    _model_arg(p)
    _detector_arg(p)
    _out_arg(p)
    p.set_defaults(func=cmd_search)


def _register_summarize(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "summarize",
        help="summarise the expressions of a photo album in a few faces",
        description=(
            "Cluster the faces' embeddings (agglomerative) and show the face closest to each "
            "cluster centre, largest cluster first."
        ),
    )
    _paths_arg(p)
    p.add_argument(
        "-n",
        "--clusters",
        type=int_at_least(1, MAX_SUMMARY_CLUSTERS),
        default=10,
        help=f"number of clusters (default 10; 1 to {MAX_SUMMARY_CLUSTERS:,})",
    )
    p.add_argument(
        "--method",
        default="complete-cosine",
        choices=("complete-cosine", "average-cosine", "ward"),
        help="complete-cosine (FECNet, default), average-cosine (average linkage, less "
        "driven by outliers) or ward (FEENet)",
    )
    p.add_argument(
        "--quality-ok",
        "--quality-only",  # its first name
        dest="quality_only",
        action="store_true",
        help="only faces passing the quality check (as search's --quality-ok)",
    )
    p.add_argument("--html", metavar="FILE", help="write a self-contained HTML report")
    _model_arg(p)
    _detector_arg(p)
    _out_arg(p)
    p.set_defaults(func=cmd_summarize)


def _register_classify(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "classify",
        help="emotion of each face by kNN on the shipped FER+ reference set",
        description=(
            "Predict the FER+ emotion of every face by k-nearest neighbours in the embedding. "
            "--evaluate prints accuracy, macro-F1 and per-class AUC-ROC on FER+ PublicTest; "
            "--build-reference makes the reference set for a model."
        ),
    )
    _paths_arg(p, "IMAGE")
    p.add_argument("-k", type=int_at_least(1), help="neighbours (default: the reference set's K)")
    p.add_argument("--reference", metavar="FILE", help="reference set .npz (default: shipped)")
    p.add_argument("--evaluate", action="store_true", help="evaluate on FER+ PublicTest")
    p.add_argument("--build-reference", action="store_true", help="build the reference set")
    p.add_argument(
        "--ref-out",
        metavar="FILE.npz",
        help="with --build-reference (required): where to write it; the shipped set is "
        "src/exprsim/apps/reference/ferplus.npz in a checkout",
    )
    p.add_argument(
        "--max-faces",
        type=int_at_least(1),
        help="with --build-reference: a random subset of N Training faces (default all)",
    )
    p.add_argument(
        "--data-dir", metavar="DIR", help=f"with --evaluate or --build-reference: {DATA_DIR_HELP}"
    )
    p.add_argument("--json", dest="json_out", metavar="FILE", help="write results as JSON")
    p.add_argument("--html", metavar="FILE", help="write a self-contained HTML report")
    _model_arg(p)
    _detector_arg(p)
    _out_arg(p)
    p.set_defaults(func=cmd_classify)


def _register_tag(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "tag",
        help="tag faces with user-defined expressions given by reference faces",
        description=(
            "exprsim tag add NAME IMAGE... --db F   store reference faces for NAME\n"
            "exprsim tag list --db F                 list reference faces\n"
            "exprsim tag remove NAME --db F          delete NAME's references and the tag\n"
            "exprsim tag calibrate [--html F]        precision/recall vs threshold (FER+);\n"
            "                                        --save --model DIR: keep the best one\n"
            "exprsim tag IMAGE... --db F             tag every face of the images\n"
            "                                        (- or --files-from FILE: a list of paths)"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "args",
        nargs="*",
        metavar="ARG",
        help=f"an action (add, list, remove, calibrate) or images; - reads {LIST_NOTE}",
    )
    add_files_from(p)
    _db_arg(p, required=False)
    p.add_argument(
        "--threshold",
        type=float_in(0.0, 2.0, lo_open=True),
        default=None,
        help="distance threshold, in (0, 2] (default: the model's calibrated threshold)",
    )
    p.add_argument(
        "--face",
        type=int_at_least(0),
        default=None,
        help="with add: which face, largest first (0: the largest; default: the largest "
        "that passes the quality check, else the largest)",
    )
    p.add_argument(
        "--index",
        action="store_true",
        help="also recompute the reference tags of every indexed face (tags of your own stay); "
        "alone (no IMAGE), only that",
    )
    p.add_argument("--data-dir", metavar="DIR", help=f"with calibrate: {DATA_DIR_HELP}")
    p.add_argument("--html", metavar="FILE", help="write a self-contained HTML report")
    p.add_argument(
        "--save",
        action="store_true",
        help="with calibrate: write the best-F1 threshold into --model FOLDER's config.json "
        "(tagging with that model then uses it)",
    )
    _model_arg(p)
    _detector_arg(p)
    _out_arg(p)
    p.set_defaults(func=cmd_tag)


# ----------------------------------------------------------------------------- helpers


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help(sys.stderr)
    return 2


def _embedder(args: argparse.Namespace) -> Any:
    from exprsim.models.embedder import load_model

    return load_model(args.model)


def _check_db_name(db: str) -> None:
    """Refuse, before any work, a ``--db`` file that is (or would become) a side file of
    another index (``X-wal``, ``X.ann``, ...): either index would destroy the other later."""
    from exprsim.index.backends import check_db_name, is_postgres_url

    if not is_postgres_url(db):
        check_db_name(db)


#: how to make a missing ``--db`` (the tag commands that read one name ``tag add``)
INDEX_ADD_HINT = "exprsim index add PATH"
TAG_ADD_HINT = "exprsim tag add NAME IMAGE"


def _require_db_file(db: str, create_hint: str = INDEX_ADD_HINT) -> None:
    """Refuse a ``--db`` file that is missing, a folder or empty; ``create_hint``: the
    command that makes one (``--db DB`` is added). A PostgreSQL URI is not checked here."""
    from exprsim.index.backends import check_db_file

    check_db_file(db, f"create one with `{create_hint} --db {shlex.quote(db)}`")


def _open_index(args: argparse.Namespace, embedder: Any = None, must_exist: bool = True) -> Any:
    from exprsim.index.store import FaceIndex

    db = str(args.db)  # a path or a postgresql:// URI (Path() would mangle the URI)
    _check_db_name(db)
    if must_exist:
        _require_db_file(db)
    # read-only commands never set up tables in a PostgreSQL database that has no index
    return FaceIndex(
        db,
        embedder=embedder,
        ann_backend=getattr(args, "ann", None) or "auto",
        create=not must_exist,
    )


def _write_table(frame: Any, out: str | None) -> None:
    """``-o``: the whole table or none (a full disk leaves an earlier file as it was)."""
    if out:
        from exprsim.io import replace_table

        replace_table(frame, out)


def _check_out(out: str | None, html: str | None = None, json_out: str | None = None) -> None:
    """Refuse an output that cannot be written before doing the work."""
    if out:
        from exprsim.io import check_table_path

        check_table_path(out)
    for flag, path in (("--out", out), ("--html", html), ("--json", json_out)):
        require_writable(path, flag)


def _outputs(args: argparse.Namespace) -> list[tuple[str, str | None]]:
    """``(flag, path)`` of the files the command writes (``--out``, ``--html``, ``--json``)."""
    return [
        ("--out", getattr(args, "out", None)),
        ("--html", getattr(args, "html", None)),
        ("--json", getattr(args, "json_out", None)),
    ]


def _images(files: list[str], what: str = "an input image") -> list[tuple[str, str]]:
    """``(what, path)`` of input files, for :func:`require_distinct_outputs`."""
    return [(what, f) for f in files]


def _print_frame(frame: Any, columns: list[str]) -> None:
    cols = [c for c in columns if c in frame.columns]
    if len(frame):
        print(frame[cols].to_string(index=False, float_format=lambda v: f"{v:.4f}"))


# ----------------------------------------------------------------------------- index


def cmd_index_add(args: argparse.Namespace) -> int:
    from exprsim.index.store import check_ann_backend
    from exprsim.io import folder_problem

    _check_db_name(str(args.db))  # before the model loads
    check_ann_backend(args.ann, str(args.db))  # faiss missing, say: refused before any work
    if args.from_parquet:
        ignored = [
            flag
            for flag, given in (
                ("PATH", bool(args.paths)),
                ("--files-from", args.files_from is not None),
                ("--detector", args.detector is not None),
                ("--retry-failed", args.retry_failed),
                ("--prune", args.prune),
                ("--workers", args.workers is not None),
            )
            if given
        ]
        if ignored:  # the table's faces are already detected and embedded
            raise ExprsimError(f"--from-parquet loads embedded faces: {', '.join(ignored)} unused")
        return _index_add_parquet(args)
    if not args.paths and not args.files_from:
        raise ExprsimError("index add needs image paths (or --files-from) or --from-parquet DIR")
    files = expand_image_paths(listed_inputs(args.paths, args.files_from), args.prune)
    # folders that could not be listed: one line each, failed inputs (the index skips them)
    unlisted = [f for f in files if _is_folder(f)]
    for folder in unlisted:
        print(f"exprsim index add: {ImageError(folder, folder_problem(folder))}", file=sys.stderr)
    skip = set(unlisted)
    files = [f for f in files if f not in skip]
    _check_new_db(args.db)  # a folder that cannot take it: before the model loads
    embedder = _embedder(args)
    with _open_index(args, embedder, must_exist=False) as index:
        try:
            report = index.add(
                files,
                progress=not args.quiet,
                detector=args.detector,
                retry_failed=args.retry_failed,
                workers=args.workers,  # None: faces.stream.default_workers()
            )
        except KeyboardInterrupt as exc:
            return _index_add_interrupted(index, exc)
        for f in report.files:
            if f.status == "failed":
                print(f"exprsim index add: {printable(str(f.path))}: {f.error}", file=sys.stderr)
        held = _prune(index, args.paths or []) if args.prune else []
        _update_ann(index, args.ann)
        unread = f"; {len(unlisted)} folders could not be listed" if unlisted else ""
        print(report.summary() + unread)
        failed = report.count("failed") + len(unlisted)
        return 1 if held or (failed and failed == len(report.files) + len(unlisted)) else 0


def _prune(index: Any, paths: list[str]) -> list[tuple[str, int, int]]:
    """``index add --prune``: forget the indexed files under the folders of ``paths`` that
    are gone, but those of a folder that looks like an unmounted drive (empty or gone,
    every file gone, labels or tags that adding the photos again cannot bring back), named
    on stderr; returns those folders."""
    gone = index.missing_under(paths)  # folders only: files are skipped
    held = index.vanished_under(gone)
    for folder, n_files, n_kept in held:
        state = "is empty" if os.path.isdir(folder) else "is gone"
        print(
            f"exprsim index add: {printable(folder)} {state} and none of its "
            f"{count(n_files, 'indexed file')} is there (a drive not mounted, a share "
            f"offline?): not forgotten, with the labels or tags of {count(n_kept, 'face')}; "
            "mount it again, or forget them, with those labels and tags, with `exprsim index "
            f"remove --db DB {shlex.quote(folder)}`",
            file=sys.stderr,
        )
    keys = tuple(folder.rstrip(os.sep) + os.sep for folder, _, _ in held)
    gone = [p for p in gone if not p.startswith(keys)]
    index.remove(gone, stored=True)
    print(f"forgot {count(len(gone), 'file')} no longer there")
    return held


def _update_ann(index: Any, ann: str | None) -> None:
    """The ANN index after ``index add``: caught up incrementally (it retrains only on
    drift) with the backend last chosen (``None``), or with the one named (recorded, faces
    or not); ``auto`` gives the choice back, as ``index rebuild --ann auto`` does (it had
    kept the choice, unlike rebuild's)."""
    if ann == "auto" and index.recorded_ann_backend != "auto":
        index.rebuild_ann("auto")
    elif len(index) or ann is not None:
        index.refresh_ann(ann)


def _index_add_interrupted(index: Any, exc: KeyboardInterrupt) -> int:
    """Ctrl-C or SIGTERM during ``index add``: every file finished was committed; say how
    many this run added (not those another writer stored meanwhile: an interruption while
    waiting for it added none), and that the same command continues; exit code 130 (143
    for SIGTERM)."""
    from exprsim.index.store import AddInterrupted
    from exprsim.interrupts import hold_interrupts, interruption

    added = 0
    if isinstance(exc, AddInterrupted):
        added = exc.report.count("added") + exc.report.count("updated")
        cause = exc.__cause__
        exc = cause if isinstance(cause, KeyboardInterrupt) else exc
    with hold_interrupts("counting the files stored"):
        now = index.info().n_files
    word, code = interruption(exc)
    print(
        f"exprsim index add: {word}: {count(added, 'file')} added in this run are stored "
        f"({now} in {index.path}); run the same command again to continue",
        file=sys.stderr,
    )
    return code


def _is_folder(path: str) -> bool:
    """A folder among the files to index: one :func:`expand_image_paths` could not list
    (false for a name the file system refuses: the index reports it)."""
    try:
        return Path(path).is_dir()
    except OSError:
        return False


def _check_new_db(db: str) -> None:
    """Refuse, before the model loads, a ``--db`` file to create where it cannot be."""
    from exprsim.index.backends import is_postgres_url

    if not is_postgres_url(str(db)) and not Path(db).exists():
        require_writable(db, "--db")


def _index_add_parquet(args: argparse.Namespace) -> int:
    import contextlib

    from exprsim.index.backends import is_postgres_url
    from exprsim.scale import load_parquet

    db = str(args.db)
    # a SQLite file this command creates is removed again if the load fails before storing
    # a face (a refused table leaves no empty database behind); an existing one is kept
    created = [] if is_postgres_url(db) else [Path(db + x) for x in ("", "-wal", "-shm")]
    created = [p for p in created if not p.exists()]
    stored = False
    # --model names the table's model (else its `model` column does): checked against it
    given = getattr(args, "model_given", False)
    embedder = _embedder(args) if given else None
    model = embedder.config.name_version if embedder is not None else None
    digest = getattr(embedder, "digest", None)  # and its content: another of that name refused
    try:
        with _open_index(args, must_exist=False) as index:
            try:
                rep = load_parquet(
                    args.from_parquet, index, model, progress=not args.quiet, model_digest=digest
                )
            except BaseException:  # shards committed before a failure stay (a rerun resumes)
                stored = True  # unless seen unwritten: a look that fails (the server went
                with contextlib.suppress(Exception):  # away) keeps the load's own error
                    stored = _written(index)
                raise
            stored = _written(index)
            if stored:
                _update_ann(index, args.ann)
    except BaseException:
        if created and not stored:
            for p in created:
                p.unlink(missing_ok=True)
        raise
    print(rep.summary())
    return 0


def _written(index: Any) -> bool:
    """Whether anything was ever written into ``index``: a face, or any write of another
    command meanwhile (a `tag add` into the new database: it was deleted with the
    database when the load failed): writes of files and faces count in the generation,
    tag reference faces do not."""
    return index.generation > 0 or len(index) > 0 or bool(index.tag_references())


def cmd_index_info(args: argparse.Namespace) -> int:
    with _open_index(args) as index:
        info = index.info()
        files = index.files() if args.failed else None
    failed: list[tuple[str, str]] = []
    if files is not None:
        rows = files[files["status"] == "failed"]
        failed = [(str(p), str(e)) for p, e in zip(rows["path"], rows["error"], strict=True)]
    if args.json:
        doc = info.to_dict()
        if args.failed:
            doc["failed"] = [{"path": p, "error": e} for p, e in failed]
        from exprsim.io import json_text

        print(json_text(doc), end="")  # strict: NaN as null
        return 0
    for k, v in info.to_dict().items():
        print(f"{k:<18}{'-' if v is None else v}")  # not Python's "None"
    for path, error in failed:
        print(f"failed: {printable(path)}: {error}")
    return 0


def cmd_index_remove(args: argparse.Namespace) -> int:
    require_paths(args.paths)  # "" would name the working folder: every file under it
    with _open_index(args) as index:
        missed: list[Any] = []
        n = index.remove(args.paths, missed)
        if n and missed:  # some matched nothing: most likely mistyped
            print(
                "exprsim index remove: no indexed file (left) under "
                + ", ".join(printable(str(p)) for p in missed),
                file=sys.stderr,
            )
        if not n:  # nothing matched: most likely a mistyped path
            print(
                "exprsim index remove: no indexed file under "
                + ", ".join(printable(str(p)) for p in args.paths),
                file=sys.stderr,
            )
            return 1
        if n and len(index):
            index.refresh_ann()
    print(f"removed {count(n, 'file')}")
    return 0


def cmd_index_rebuild(args: argparse.Namespace) -> int:
    with _open_index(args) as index:
        stamp = index.rebuild_ann(args.ann)
        saved = index.ann_saved
    if saved is False:  # read-only, or the disk refused: it lived in this process only
        print(
            f"exprsim index rebuild: built the {stamp.backend} index over "
            f"{count(stamp.count, 'face')} but could not save it beside {args.db} (a "
            "read-only folder or a full disk); searches build it again",
            file=sys.stderr,
        )
        return 1
    print(f"rebuilt {stamp.backend} index over {count(stamp.count, 'face')}")
    return 0


def cmd_index_reembed(args: argparse.Namespace) -> int:
    from exprsim.interrupts import interruption

    embedder = _embedder(args)
    with _open_index(args, embedder) as index:
        before = index.generation  # the writing transaction bumps it
        try:
            report = index.reembed(progress=not args.quiet, force=args.force)
        except KeyboardInterrupt as exc:
            word, code = interruption(exc)
            done = (
                "the index was re-embedded"
                if index.generation != before
                else ("nothing was written (the index is as it was)")
            )
            print(f"exprsim index reembed: {word}: {done}", file=sys.stderr)
            return code
    print(report.summary())
    return 0


# ----------------------------------------------------------------------------- search


def cmd_search(args: argparse.Namespace) -> int:
    from exprsim.apps.search import search, search_page

    require_paths([args.query], "QUERY")
    _check_out(args.out, args.html)
    require_distinct_outputs(
        _outputs(args),
        [*db_inputs(args.db), ("the query image", args.query), *model_inputs(args.model)],
    )
    embedder = _embedder(args)
    with _open_index(args, embedder) as index:
        result = search(
            args.query,
            index,
            k=args.k,
            exclude_same_image=not args.include_same_image,
            exclude_same_identity=args.exclude_same_identity,
            quality_ok_only=args.quality_ok,
            min_sharpness=args.min_sharpness,
            max_abs_yaw=args.max_yaw,
            face=args.face,
            detector=args.detector,
        )
        frame = result.to_frame()
        shown = ["rank", "distance", "source", "face", "quality_ok"]
        _print_frame(frame, shown + ["identity_distance"] * args.exclude_same_identity)
        left_out = _left_out(result.excluded)
        if not result.hits and not len(index):
            print(
                # the index's path: a PostgreSQL URI without its password
                f"no matching faces: {printable(str(index.path))} holds no faces yet "
                "(exprsim index add)",
                file=sys.stderr,
            )
        elif not result.hits:
            print("no matching faces" + (f" ({left_out})" if left_out else ""), file=sys.stderr)
        elif len(result.hits) < args.k and left_out:
            print(
                f"{len(result.hits)} of {count(args.k, 'face')} found ({left_out})", file=sys.stderr
            )
        _write_table(frame, args.out)
        if args.html:
            search_page(result, index).save(args.html)
            print(f"report: {printable(str(args.html))}")
    return 0


def _left_out(excluded: dict[str, int]) -> str:
    """What a search's filters left out, in words (empty when nothing was)."""
    words = {
        "same_image": "of the query's own image (the same file or a copy; "
        "--include-same-image keeps them)",
        "same_identity": "of the same person (--exclude-same-identity)",
        "quality": "failing the quality filters",
    }
    parts = [
        f"{n} face{'s' if n != 1 else ''} {words.get(k, k)}" for k, n in excluded.items() if n > 0
    ]
    return "left out: " + "; ".join(parts) if parts else ""


# ----------------------------------------------------------------------------- summarize


def cmd_summarize(args: argparse.Namespace) -> int:
    from exprsim.apps.summarize import summarize_images, summary_page

    _check_out(args.out, args.html)
    files = expand_image_paths(listed_inputs(args.paths, args.files_from))
    require_distinct_outputs(
        _outputs(args),
        [*_images(files), *list_inputs(args.files_from), *model_inputs(args.model)],
    )
    failures: list[Any] = []
    interrupted: list[BaseException] = []
    try:
        summary = summarize_images(
            files,
            n_clusters=args.clusters,
            method=args.method,
            embedder=_embedder(args),
            detector=args.detector,
            quality_only=args.quality_only,
            progress=not args.quiet,
            failures=failures,
            interrupted=interrupted,
        )
    finally:  # the skipped files are reported even when nothing was left to summarise
        report_failures("summarize", failures, len(files))
    items = summary.items or ()
    for c in summary.clusters:
        rep = items[c.representative] if items else None
        where = (
            f"{rep.source} face {rep.face_index}" if rep is not None else f"item {c.representative}"
        )
        print(f"cluster {c.rank + 1}: {count(c.size, 'face')}, representative {where}")
    if interrupted:
        return _interrupted_summary(summary, args.out, args.html)
    _write_table(summary.to_frame(), args.out)
    if args.html:
        summary_page(summary).save(args.html)
        print(f"report: {printable(str(args.html))}")
    return 0


def _interrupted_summary(summary: Any, out: str | None, html: str | None) -> int:
    """A Ctrl-C stopped ``summarize`` while it read the images: the summary of the faces
    found so far goes to ``out`` and ``html`` (never over earlier files: beside them, as
    :func:`_interrupted_table`), and it says so; exit code 130 (143 for SIGTERM)."""
    from exprsim.apps.summarize import summary_page
    from exprsim.interrupts import hold_interrupts, interruption
    from exprsim.io import free_partial_path, save_partial_table

    where = []
    with hold_interrupts("the summary"):  # a second Ctrl-C loses nothing
        if out:
            where.append(saved_where(out, save_partial_table(summary.to_frame(), out)))
        if html:
            page = free_partial_path(html) if Path(html).exists() else Path(html)
            title = "Expression summary of the images read before the interruption"
            summary_page(summary, title=title).save(page)
            where.append(saved_where(html, page))
    word, code = interruption()
    print(
        f"exprsim summarize: {word}: a summary of the {count(len(summary.labels), 'face')} "
        f"of the images done{''.join(where)}",
        file=sys.stderr,
    )
    return code


# ----------------------------------------------------------------------------- classify


#: options each classify mode does not read (flag, argparse name): refused when given
_CLASSIFY_UNREAD = {
    "--build-reference": (
        ("-k", "k"), ("--reference", "reference"), ("--detector", "detector"),
        ("--html", "html"), ("-o", "out"), ("--json", "json_out"),
    ),
    "--evaluate": (("--detector", "detector"), ("--html", "html")),
}  # fmt: skip


def _check_classify(args: argparse.Namespace) -> list[str]:
    """Everything ``classify`` can refuse before loading a model; returns the image files
    (none with --evaluate or --build-reference)."""
    from exprsim.apps import classify as cl

    _check_out(args.out, args.html, args.json_out)
    images = bool(args.paths or args.files_from)
    modes = sum([bool(args.evaluate), bool(args.build_reference), images])
    if modes != 1:
        raise ExprsimError("give IMAGE..., or --evaluate, or --build-reference (exactly one)")
    if args.build_reference:
        if not args.ref_out:
            raise ExprsimError(
                f"--build-reference needs --ref-out FILE.npz (the shipped set, "
                f"{cl.reference_path()}, is only replaced when named)"
            )
        if not args.ref_out.lower().endswith(".npz"):
            raise ExprsimError(f"--ref-out {args.ref_out}: a reference set is a .npz file")
        require_writable(args.ref_out, "--ref-out")
    else:  # options that only building reads were ignored without a word
        for flag, value in (("--ref-out", args.ref_out), ("--max-faces", args.max_faces)):
            if value is not None:
                raise ExprsimError(f"{flag} is an option of --build-reference")
    if images and args.data_dir is not None:  # FER+ is read only to evaluate or build
        raise ExprsimError("--data-dir is an option of --evaluate or --build-reference")
    mode = "--build-reference" if args.build_reference else "--evaluate" if args.evaluate else ""
    unread = [
        flag for flag, key in _CLASSIFY_UNREAD.get(mode, ()) if getattr(args, key) is not None
    ]
    if unread:  # accepted and ignored before, exit 0
        raise ExprsimError(f"classify {mode} does not take {', '.join(unread)}")
    files = expand_image_paths(listed_inputs(args.paths, args.files_from)) if images else []
    building = bool(args.build_reference)
    reference = [] if building else [("the reference set", args.reference or cl.reference_path())]
    require_distinct_outputs(
        [*_outputs(args), ("--ref-out", args.ref_out if building else None)],
        [
            *_images(files),
            *reference,
            *list_inputs(args.files_from),
            *model_inputs(args.model),
            *(fer_inputs(args.data_dir) if building or args.evaluate else ()),
        ],
    )
    return files


def _check_reference_model(args: argparse.Namespace, reference: Any, embedder: Any) -> None:
    """After the library refused the reference set (``ModelMismatchError``): when it was made
    with another model, say so with the command that builds one for this model (the
    library names its Python function, which a CLI user cannot run); else return (the
    caller re-raises the library's error)."""
    from exprsim.apps.classify import BUILD_REFERENCE_COMMAND
    from exprsim.index.store import ModelMismatchError

    differ = reference.mismatch(embedder)
    if differ is None:
        return
    made_with, model = differ
    flag = "" if args.model == "default" else f" --model {printable(args.model)}"
    raise ModelMismatchError(
        f"the reference set was made with model {printable(made_with)}, not {model}: build one "
        f"for this model with `{BUILD_REFERENCE_COMMAND}{flag}`, then give it with "
        "--reference FILE.npz"
    )


def cmd_classify(args: argparse.Namespace) -> int:
    from exprsim.apps import classify as cl
    from exprsim.index.store import ModelMismatchError
    from exprsim.io import write_json

    files = _check_classify(args)
    embedder = _embedder(args)
    if args.build_reference:
        ref = cl.build_reference_set(
            embedder,
            out_path=args.ref_out,
            data_dir=args.data_dir,
            max_faces=args.max_faces,
            progress=not args.quiet,
        )
        print(ref.to_frame().to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        print(f"K={ref.k} ({count(len(ref.labels), 'face')}) -> {printable(str(args.ref_out))}")
        return 0
    reference = cl.load_reference_set(args.reference)
    if args.evaluate:
        try:
            report = cl.evaluate_reference(
                embedder, reference, data_dir=args.data_dir, k=args.k, progress=not args.quiet
            )
        except ModelMismatchError:
            _check_reference_model(args, reference, embedder)
            raise
        print(report.format())
        _write_table(report.to_frame(), args.out)
        if args.json_out:
            write_json(args.json_out, report.to_dict())
        return 0
    failures: list[Any] = []
    try:
        result = cl.classify_images(
            files,
            embedder,
            reference,
            k=args.k,
            detector=args.detector,
            failures=failures,
            progress=not args.quiet,
            keep_on_interrupt=True,
        )
    except ModelMismatchError:
        _check_reference_model(args, reference, embedder)
        raise
    rc = report_failures("classify", failures, len(files))
    frame = result.to_frame()
    _print_frame(frame, ["source", "face", "label", "confidence", "quality_ok"])
    if result.interrupted:
        return _interrupted_table("classify", frame, args.out)
    if not result.faces:
        print("no faces found", file=sys.stderr)
    _write_table(frame, args.out)
    if args.json_out:
        write_json(args.json_out, result.to_dict())
    if args.html:
        cl.classification_page(result).save(args.html)
        print(f"report: {printable(str(args.html))}")
    return rc


def _interrupted_table(command: str, frame: Any, out: str | None) -> int:
    """A Ctrl-C stopped ``command``: the rows of the images done go to ``out`` (never over
    an earlier table), and it says where; exit code 130 (143 for SIGTERM)."""
    from exprsim.interrupts import hold_interrupts, interruption
    from exprsim.io import save_partial_table

    with hold_interrupts(f"the {command} table"):  # a second Ctrl-C loses nothing
        saved = save_partial_table(frame, out) if out else None
    word, code = interruption()
    print(
        f"exprsim {command}: {word}: {count(len(frame), 'face')} of the images done"
        + saved_where(out, saved),
        file=sys.stderr,
    )
    return code


# ----------------------------------------------------------------------------- tag


#: the options each ``tag`` action reads, among those that are not always read (an option
#: another action reads is refused, not silently ignored)
TAG_OPTIONS = {
    "add": {"db", "face", "detector"},
    "list": {"db"},
    "remove": {"db"},
    "calibrate": {"data_dir", "out", "html", "save"},
    "tag": {"db", "threshold", "index", "detector", "out", "html", "files_from"},
    "index": {"db", "threshold", "index"},  # tag --index alone: re-tag the indexed faces
}
_TAG_DEFAULTS = {
    "db": None, "face": None, "detector": None, "data_dir": None, "out": None, "html": None,
    "threshold": None, "index": False, "files_from": None, "save": False,
}  # fmt: skip
#: the tag actions that read reference faces: their missing ``--db`` is made by ``tag add``
#: (``index add`` adds no reference face)
_TAG_READS_REFERENCES = ("list", "remove", "tag")


def _tag_what(action: str) -> str:
    """How messages name ``action`` ("tag" is ``tag IMAGE...``, "index" ``tag --index``)."""
    return {"tag": "tag IMAGE...", "index": "tag --index"}.get(action, f"tag {action}")


def _check_tag_options(args: argparse.Namespace, action: str) -> None:
    """Refuse an option ``tag ACTION`` does not read (``tag list --html x`` wrote nothing)."""
    ignored = [
        "--" + k.replace("_", "-")
        for k, default in _TAG_DEFAULTS.items()
        if k not in TAG_OPTIONS[action] and getattr(args, k, default) != default
    ]
    if ignored:
        raise ExprsimError(f"{_tag_what(action)} does not take {', '.join(ignored)}")


def _check_tag(args: argparse.Namespace, action: str, rest: list[str]) -> list[str]:
    """Everything ``tag ACTION`` can refuse before opening the index or loading a model
    (``action`` "index": ``tag --index`` alone); returns the image files (of
    ``tag add NAME IMAGE...`` or ``tag IMAGE...``)."""
    from exprsim.apps.tag import check_new_tag_name, check_tag_name

    _check_tag_options(args, action)
    if action in ("list", "calibrate") and rest:  # `tag list smile` listed every tag
        usage = "tag list --db FILE" if action == "list" else "tag calibrate [--html FILE]"
        raise ExprsimError(f"tag {action} takes no {printable(rest[0])!r} (usage: exprsim {usage})")
    _check_out(args.out, args.html)
    if args.save:  # before minutes of calibration, not after
        from exprsim.apps.tag import check_threshold_target

        check_threshold_target(args.model)
    if action != "calibrate" and not args.db:
        raise ExprsimError(f"{_tag_what(action)}: --db FILE is required")
    if args.db:
        _check_db_name(str(args.db))
    if action in _TAG_READS_REFERENCES:  # before the model loads
        _require_db_file(str(args.db), TAG_ADD_HINT)
    if action == "add":
        _check_new_db(args.db)  # before the model loads
    files: list[str] = []
    if action == "add":
        if len(rest) < 2:
            raise ExprsimError("usage: exprsim tag add NAME IMAGE... --db FILE")
        check_new_tag_name(rest[0])
        files = rest[1:]
        require_paths(files, "IMAGE")
    elif action == "remove":
        if len(rest) != 1:
            raise ExprsimError("usage: exprsim tag remove NAME --db FILE")
        check_tag_name(rest[0])
    elif action == "tag":
        files = expand_image_paths(listed_inputs(rest, args.files_from))
    require_distinct_outputs(
        _outputs(args),
        [
            *db_inputs(args.db),
            *_images(files),
            *list_inputs(args.files_from),
            *model_inputs(args.model),
            *(fer_inputs(args.data_dir) if action == "calibrate" else ()),
        ],
    )
    return files


def _refuse_mistyped_action(first: str | None) -> None:
    """``tag ad smile x.jpg`` would tag the images ``ad``, ``smile`` and ``x.jpg``: a first
    word that is no file or folder but reads like an action is refused with the action,
    and any other bare word (no suffix, no folder) with the list of actions."""
    import difflib

    if first is None or first == "-" or os.path.lexists(first):
        return
    close = difflib.get_close_matches(first.lower(), TAG_ACTIONS, n=1, cutoff=0.6)
    if close:
        raise ExprsimError(
            f"no action or file {printable(first)!r}; did you mean `exprsim tag {close[0]}`?"
        )
    if first.isidentifier():  # a bare word (no suffix, no folder): three lines said less
        raise ExprsimError(
            f"no action or file {printable(first)!r} (actions: {', '.join(TAG_ACTIONS)}; "
            "or give images to tag)"
        )


def cmd_tag(args: argparse.Namespace) -> int:
    from exprsim.apps.tag import Tagger, calibrate_from_ferplus, calibration_page
    from exprsim.index.store import compose_tag_name

    action, rest = (
        (args.args[0], args.args[1:])
        if args.args and args.args[0] in TAG_ACTIONS
        else ("tag", args.args)
    )
    if not args.args and args.files_from is None and args.index:  # re-tag the index only
        _check_tag(args, "index", [])
        with _open_index(args, _embedder(args)) as index:
            n = Tagger(index, threshold=args.threshold).tag_index()
        print(f"tagged {count(n, 'indexed face')}")
        return 0
    if not args.args and args.files_from is None:
        raise ExprsimError(
            "tag needs an action (add, list, remove, calibrate), images "
            "(PATHs, - or --files-from FILE) or --index; see exprsim tag --help"
        )
    if action == "tag":
        _refuse_mistyped_action(args.args[0] if args.args else None)
    if action == "add" and rest:
        rest[0] = compose_tag_name(rest[0])  # "café" with a combining accent: the same tag
    files = _check_tag(args, action, rest)
    if action == "calibrate":
        embedder = _embedder(args)
        # the model as loaded: a folder re-exported meanwhile gets no threshold of it
        identity = getattr(embedder, "digest", None) if args.save else None
        cal = calibrate_from_ferplus(embedder, data_dir=args.data_dir, progress=not args.quiet)
        from exprsim.io import json_text

        print(json_text(cal.to_dict()), end="")  # strict: NaN as null
        if args.save:  # first: a report the disk refuses must not lose the calibration
            from exprsim.apps.tag import save_tag_threshold

            path = save_tag_threshold(args.model, cal.best_f1_threshold, identity)
            print(f"tag_threshold {cal.best_f1_threshold:g} -> {printable(str(path))}")
        _write_table(cal.to_frame(), args.out)
        if args.html:
            calibration_page(cal).save(args.html)
            print(f"report: {printable(str(args.html))}")
        return 0
    if action == "add":
        return _tag_add(args, rest[0], files)
    if action == "list":
        with _open_index(args) as index:
            refs = Tagger(index).references()
        for r in refs:
            print(f"{r.id:>5}  {printable(r.name):<20}  {printable(r.source)}")
        if not refs:
            print("no reference faces", file=sys.stderr)
        return 0
    if action == "remove":
        return _tag_remove(args, rest[0])
    return _tag_images(args, files)


def _tag_remove(args: argparse.Namespace, name: str) -> int:
    """``exprsim tag remove NAME``: its reference faces, and the name from the indexed
    faces' tags; a name that is neither (a typo?) is a failure (exit 1)."""
    from exprsim.apps.tag import Tagger

    with _open_index(args) as index:
        name = Tagger(index).stored_name(name)  # as stored, however typed
        # one transaction: the name also leaves the indexed faces' tags
        n, untagged = index.delete_tag(name)
    if not n and not untagged:
        print(
            f"exprsim tag remove: no tag named '{printable(name)}' (no reference faces, "
            "no tagged faces)",
            file=sys.stderr,
        )
        return 1
    print(
        f"removed {count(n, 'reference face')} of '{printable(name)}', and the tag from "
        f"{count(untagged, 'face')}"
    )
    return 0


def _tag_add(args: argparse.Namespace, name: str, images: list[str]) -> int:
    """``exprsim tag add NAME IMAGE...``: a faceless or unreadable image is reported, the
    others added."""
    from exprsim.apps.tag import Tagger

    with _open_index(args, _embedder(args), must_exist=False) as index:
        tagger = Tagger(index)
        known = {r.id for r in tagger.references()}
        bad: list[Any] = []
        for im in images:
            try:
                ref = tagger.add(name, im, face=args.face, detector=args.detector)
            except ImageError as exc:
                bad.append(exc)
                continue
            if ref.id in known:
                print(
                    f"{printable(ref.source)}: already a reference face for "
                    f"'{printable(name)}'; not added again"
                )
            else:
                known.add(ref.id)
                print(
                    f"added a reference face for '{printable(name)}' from {printable(ref.source)}"
                )
    # a file read but without the face asked for is skipped as well, so say both
    return report_failures("tag add", bad, len(images), "gave no reference face")


def _tag_images(args: argparse.Namespace, files: list[str]) -> int:
    """``exprsim tag IMAGE...``: the tags of every face (``--index``: also recompute the
    tags of the indexed faces)."""
    from exprsim.apps.tag import Tagger, tag_page

    with _open_index(args, _embedder(args)) as index:
        tagger = Tagger(index, threshold=args.threshold)  # None: the model's calibrated one
        failures: list[Any] = []
        results = tagger.tag(
            files,
            detector=args.detector,
            failures=failures,
            progress=not args.quiet,
            keep_on_interrupt=True,
        )
        rc = report_failures("tag", failures, len(files))
        frame = results.to_frame()
        _print_frame(frame, ["source", "face", "tags", "best_distance"])
        if results.interrupted:  # the index is not re-tagged: that is another job
            return _interrupted_table("tag", frame, args.out)
        if not results:
            print("no faces found", file=sys.stderr)
        if args.index:
            n = tagger.tag_index()
            print(f"tagged {count(n, 'indexed face')}")
        _write_table(frame, args.out)
        if args.html:
            tag_page(results, tagger.references(), threshold=tagger.threshold).save(args.html)
            print(f"report: {printable(str(args.html))}")
    return rc
