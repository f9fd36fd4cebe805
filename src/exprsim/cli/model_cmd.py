"""``exprsim models | embed | compare | train | ensemble | evaluate``."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from exprsim.cli.argtypes import (
    DATA_DIR_HELP,
    LIST_NOTE,
    MODEL_HELP,
    add_files_from,
    command_parsers,
    detector_help,
    expand_image_paths,
    fer_inputs,
    float_in,
    int_at_least,
    list_inputs,
    listed_inputs,
    model_inputs,
    refuse_dash,
    refuse_json_file,
    require_distinct_outputs,
    require_paths,
    require_writable,
)
from exprsim.cli.exitcodes import failure_exit_code, saved_where
from exprsim.errors import ArgumentError, ExprsimError, ImageError, printable
from exprsim.faces.detect import DEFAULT_DETECTOR
from exprsim.wording import count

#: where the training configs are (said by ``train --help``, and when one is not found)
CONFIGS_NOTE = (
    "the source repository has them in configs/: default.json, quick.json, fec-*.json, ..."
)


def register(sub: Any) -> None:
    command_parsers(sub)
    p = sub.add_parser(
        "models",
        help="list registered networks and shipped models",
        description="List the registered networks (create_model), the shipped models "
        "(load_model, --model NAME) and the training recipes (exprsim train).",
    )
    p.set_defaults(func=cmd_models)
    _register_embed(sub)

    p = sub.add_parser(
        "compare",
        help="pairwise expression distances of faces; the odd one out of three",
        description="Print the matrix of expression distances between one face of each "
        "image (its largest face that passes the quality check, else its largest); with "
        "three images, also the odd one out (the face outside the closest pair), if one pair "
        "is closer than the others.",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="two or more images")
    p.add_argument("--model", default="default", help=MODEL_HELP)
    p.add_argument("--detector", default=DEFAULT_DETECTOR, help=detector_help())
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_compare)

    _register_train(sub)

    p = sub.add_parser(
        "evaluate",
        help="evaluate a model on FER+ PublicTest (or FEC test)",
        description="Score a model on FER+ PublicTest triplets and classification (or, with "
        "--fec-test, on FEC test triplets) and print the report.",
    )
    p.add_argument("--model", default="default", help=MODEL_HELP)
    p.add_argument(
        "--baselines",
        action="store_true",
        help="also random, raw pixels, fer CNN (perceptual-VAE runs: raw landmarks, PCA)",
    )
    p.add_argument(
        "--also",
        action="append",
        metavar="MODEL",
        help="another model (checkpoint folder) scored in the same run; repeatable",
    )
    p.add_argument(
        "--fec-test", metavar="CSV", help="FEC test CSV (evaluates FEC triplets instead)"
    )
    p.add_argument(
        "--fec-crops",
        metavar="DIR",
        help="folder written by `exprsim fec fetch` (with --fec-test)",
    )
    p.add_argument("--data-dir", metavar="DIR", help=f"FER+ PublicTest: {DATA_DIR_HELP}")
    p.add_argument(
        "--json", dest="json_out", metavar="FILE", help="also write the report as JSON here"
    )
    p.set_defaults(func=cmd_evaluate)


def _register_embed(sub: Any) -> None:
    p = sub.add_parser(
        "embed",
        help="detect, align and embed every face -> table",
        description=(
            "Detect, align and embed every face of the images; one row per face: the columns "
            "of `exprsim faces`, then model, the embedding e0..e15 and the file's size, "
            "mtime_ns and sha256 (so that `index add` after `index add --from-parquet` skips "
            "files unchanged since). Folders are searched recursively. Unreadable files (and "
            "folders that cannot be listed) are reported "
            "on stderr, one line each; the exit code is non-zero only if every input failed "
            "(with --strict: if any failed). Ctrl-C (or SIGTERM) keeps the faces of the "
            "files done: written to --out, or beside an earlier file there as "
            "NAME.partial.EXT (exit code 130; 143 for SIGTERM, 129 for SIGHUP). --engine "
            "ray writes "
            "resumable Parquet shards into a folder instead."
        ),
    )
    p.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help=f"image files or folders; - reads {LIST_NOTE}; with --engine ray also a glob "
        "or a Parquet/CSV list of paths or URIs",
    )
    add_files_from(p)
    p.add_argument(
        "-o",
        "--out",
        required=True,
        metavar="FILE",
        help="faces.parquet | faces.csv | faces.jsonl | faces.json; with --engine ray a folder "
        "of Parquet shards",
    )
    p.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local (this process, the default) or ray (Ray Data actors; resumable shards)",
    )
    p.add_argument("--address", help="with --engine ray: auto, ray://host:port (default: local)")
    p.add_argument(
        "--workers",
        type=int_at_least(1),
        default=2,
        help="front-end threads (local) or Ray actors (default 2)",
    )
    p.add_argument(
        "--shard-size",
        type=int_at_least(1),
        default=256,
        help="with --engine ray: images per shard (default 256)",
    )
    p.add_argument(
        "--no-retry-failed",
        dest="retry_failed",
        action="store_false",
        help="with --engine ray: skip every finished shard (by default a rerun tries again "
        "the unreadable images a shard recorded in its _part-...failed.json)",
    )
    p.add_argument("--model", default="default", help=MODEL_HELP)
    p.add_argument("--detector", default=DEFAULT_DETECTOR, help=detector_help())
    p.add_argument("--strict", action="store_true", help="fail if any input fails")
    p.set_defaults(func=cmd_embed)


def _register_train(sub: Any) -> None:
    p = sub.add_parser(
        "train",
        help='train a learner from a JSON config (its "recipe": see `exprsim models`)',
        description='Train the learner a JSON config names in its "recipe" field (see '
        "`exprsim models`) into an output folder; rerunning into the same folder resumes an "
        "unfinished run. A finished run without its checkpoint (state.pt) is trained again "
        "from the start; its model and metrics are first kept beside it "
        "(model.safetensors.~N~, metrics.jsonl.~N~).",
    )
    p.add_argument(
        "--config",
        required=True,
        metavar="FILE",
        help=f"the JSON config ({CONFIGS_NOTE})",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        help="output folder (default runs/<config name>; resumed if it holds the run)",
    )
    p.add_argument(
        "--epochs",
        type=int_at_least(1),
        help="override the config's length (epochs; iterations for fec and pvae; levels for "
        "sgm-subspaces)",
    )
    p.add_argument(
        "--device",
        help="cpu, cuda, cuda:N or auto, for recipes with a device setting (ferplus, fec, "
        "ensemble, sgm-subspaces: its base training; resumable anywhere; default: the "
        "config's device); the others train on the CPU",
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "ensemble",
        help="compose trained exprnet_v runs into one model (readout chosen on validation)",
        description="Compose trained exprnet_v runs that hold out the same validation faces "
        "into one model; the embedding block and readout angle are chosen by the validation "
        "triplet score.",
    )
    p.add_argument("runs", nargs="+", help="run folders holding out the same validation faces")
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="folder for the composed model: config.json + model.safetensors",
    )
    p.add_argument(
        "--angles", type=float_in(0.0, 90.0), nargs="+", default=[0.0, 15.0, 30.0, 45.0],
        help="readout angles tried (degrees, 0 to 90; default 0 15 30 45)",
    )  # fmt: skip
    p.add_argument(
        "--draws",
        type=int_at_least(1),
        default=10,
        help="validation triplet draws of 3,000 (1 to 1000; default 10)",
    )
    p.add_argument(
        "--version", default="ens", help="model version stored in config.json (default ens)"
    )
    p.set_defaults(func=cmd_ensemble)


def cmd_models(args: argparse.Namespace) -> int:
    from exprsim.models.embedder import SHIPPED, content_digest, model_identity
    from exprsim.models.registry import list_models, model_spec

    print("registered networks (create_model):")
    for name in list_models():
        spec = model_spec(name)
        print(
            f"  {name:<20} {spec.in_channels}x{spec.input_size}x{spec.input_size}  {spec.description}"
        )
    print("shipped models (load_model):")
    for name in SHIPPED:
        print(f"  {name:<20} {model_identity(name)}, content {content_digest(name)}")
    from exprsim.training import recipes

    print('learners (exprsim train --config: the config\'s "recipe"):')
    for recipe in recipes():
        print(f"  {recipe.name:<20} {recipe.description}")
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    # - and --files-from: lists of paths; a blank PATH ("": the working folder) refused
    paths = listed_inputs(args.paths, args.files_from)
    # a file named as an input (a list of paths, with ray) is not overwritten by -o
    require_distinct_outputs(
        [("--out", args.out)],
        [
            *(("an input file", p) for p in paths),
            *list_inputs(args.files_from),
            *model_inputs(args.model),
        ],
    )
    if args.engine == "ray":
        return _embed_ray(args, paths)
    from exprsim.apps.embed import embed_files, embedding_columns, table_schema
    from exprsim.faces.detect import check_detector
    from exprsim.interrupts import hold_interrupts, interruption
    from exprsim.io import TableWriter, check_table_path
    from exprsim.models.embedder import load_model
    from exprsim.models.identity import embedder_digest

    _refuse_ray_options(args)
    out = check_table_path(args.out)
    require_writable(args.out, "--out")  # a folder, say: refused before the work
    files = expand_image_paths(paths)  # a file named twice is embedded once
    require_distinct_outputs(
        [("--out", args.out)], [*(("an input image", f) for f in files), *model_inputs(args.model)]
    )
    check_detector(args.detector)  # an unknown or missing detector: before any work
    embedder = load_model(args.model)
    # rows stream to the file as they are made: bounded memory, and an interrupted run
    # keeps (and says) what it had done, never over a complete earlier table
    columns = embedding_columns(embedder.embedding_dim)
    schema = table_schema(columns, model_digest=embedder_digest(embedder))  # the content
    with TableWriter(out, columns, schema=schema) as writer:
        try:
            table = embed_files(
                files,
                embedder,
                detector=args.detector,
                progress=not args.quiet,
                on_error=_print_embed_error,
                sink=writer.write,
                workers=args.workers,
            )
            # a Ctrl-C while the last rows are written (the bar at 100%) must not lose them
            with hold_interrupts("the embeddings table") as held:
                if table.errors and len(table.errors) == table.files:
                    writer.abort()  # every input failed: an earlier table is left as it was
                    print(
                        f"exprsim embed: no file could be read; {printable(str(out))} not written",
                        file=sys.stderr,
                    )
                else:
                    writer.close()
        except KeyboardInterrupt as exc:
            return _embed_interrupted(writer, exc)
    failed = len(table.errors)
    if held:  # the run was complete: its table is, too
        word, code = interruption()
        where = saved_where(out, writer.saved_to)
        print(
            f"exprsim embed: {word} while writing: {count(writer.rows, 'face')} saved{where}",
            file=sys.stderr,
        )
        return code
    if table.files and failed == table.files:  # said on stderr: nothing to sum up
        return failure_exit_code(failed, table.files, args.strict)
    sec = table.stats.get("seconds", 0.0)
    rate = f" in {sec:.1f} s ({table.n_faces / sec:.1f} faces/s)" if sec > 0 else ""
    where = f" -> {printable(str(writer.saved_to))}" if writer.saved_to else ""
    print(
        f"{count(table.n_faces, 'face')} from {table.files - failed}/"
        f"{count(table.files, 'image')}{rate}{where}"
    )
    return failure_exit_code(failed, table.files, args.strict)


def _print_embed_error(name: str, exc: ImageError) -> None:
    from tqdm import tqdm

    tqdm.write(f"exprsim embed: {exc}", file=sys.stderr)  # above the bar, not on it


def _embed_interrupted(writer: Any, exc: KeyboardInterrupt) -> int:
    """Ctrl-C or SIGTERM during ``exprsim embed``: keep the faces done (never over a
    complete earlier table), say where they are; exit code 130 (143 for SIGTERM)."""
    from exprsim.interrupts import hold_interrupts, interruption

    with hold_interrupts("the embeddings table"):  # a second Ctrl-C loses nothing
        saved = writer.keep_partial()
    word, code = interruption(exc)
    where = saved_where(writer.path, saved)
    print(f"exprsim embed: {word}: {count(writer.rows, 'face')} saved{where}", file=sys.stderr)
    return code


def _refuse_ray_options(args: argparse.Namespace) -> None:
    """Options of ``--engine ray`` given to the local engine were ignored without a word."""
    given = [
        flag
        for flag, is_set in (
            ("--address", args.address is not None),
            ("--shard-size", args.shard_size != 256),
            ("--no-retry-failed", not args.retry_failed),
        )
        if is_set
    ]
    if given:
        raise ExprsimError(f"{', '.join(given)}: options of --engine ray")


def _embed_ray(args: argparse.Namespace, paths: list[str]) -> int:
    from exprsim.scale import RayEmbedInterrupted, embed_with_ray

    try:
        rep = embed_with_ray(
            paths[0] if len(paths) == 1 else paths,
            args.out,
            address=args.address,
            model=args.model,
            detector=args.detector,
            num_workers=args.workers,
            shard_size=args.shard_size,
            progress=not args.quiet,
            retry_failed=args.retry_failed,
        )
    except RayEmbedInterrupted as exc:
        return _embed_ray_interrupted(exc)
    for line in rep.errors:  # one line per unreadable image, as the local engine prints
        print(f"exprsim embed: {line}", file=sys.stderr)
    print(rep.summary())
    if rep.held:  # Ctrl-C or SIGTERM while Ray stopped: every shard was done by then
        from exprsim.interrupts import interruption

        word, code = interruption()
        print(f"exprsim embed: {word} while Ray stopped; every shard was done", file=sys.stderr)
        return code
    # judged against the whole input list: a rerun that only retried a broken image has
    # not failed on every input
    return failure_exit_code(rep.failed, max(rep.inputs, rep.images), args.strict)


def _embed_ray_interrupted(exc: Any) -> int:
    """Ctrl-C or SIGTERM during ``exprsim embed --engine ray``: say what the folder keeps
    (a :class:`exprsim.scale.RayEmbedInterrupted`); exit code 130 (143 for SIGTERM)."""
    from exprsim.interrupts import interruption

    word, code = interruption(exc.__cause__ or exc)
    print(
        f"exprsim embed: {word}: {exc.shards_kept} of {count(exc.shards, 'shard')} "
        f"({count(exc.images_kept, 'image')}) kept in {printable(exc.out_dir)}; "
        "run the command again to continue",
        file=sys.stderr,
    )
    return code


def cmd_compare(args: argparse.Namespace) -> int:
    from exprsim.apps.compare import compare_images, display_names
    from exprsim.faces.detect import check_detector
    from exprsim.models.embedder import load_model

    refuse_json_file(args.images, args.json, "compare")
    folders = [p for p in args.images if os.path.isdir(p)]
    if folders:  # compare takes images: a folder is no one image
        raise ExprsimError(f"{printable(folders[0])} is a folder; compare takes image files")
    if len(args.images) < 2:
        raise ExprsimError("compare needs at least two images")
    require_paths(args.images, "IMAGE")
    check_detector(args.detector)  # an unknown or missing detector: before the model loads
    result = compare_images(args.images, load_model(args.model), detector=args.detector)
    if args.json:
        from exprsim.io import json_text

        print(json_text(result.to_dict()), end="")
        return 0
    # file names, or the paths as given when two collide (a/x.jpg, b/x.jpg); a newline or
    # an undecodable byte in a name printed escaped, so that each row stays one line
    names = display_names(args.images)
    width = max(len(n) for n in names)
    print(" " * width + "  " + "  ".join(f"{i:>6d}" for i in range(len(names))))
    for i, n in enumerate(names):
        print(f"{n:<{width}}  " + "  ".join(f"{v:6.3f}" for v in result.distances[i]))
    if result.odd_one_out is not None:
        print(f"odd one out: {printable(args.images[result.odd_one_out])}")
    elif len(args.images) == 3:
        print("odd one out: none (no pair is closer than the others)")
    return 0


class _RepeatedKey(ValueError):
    """A config file gives one key twice in one object."""


def _no_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` refusing a key given twice in one JSON object (``json``
    keeps the last one silently: the other setting would be lost without a word)."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _RepeatedKey(f"key {key!r} is given twice in one object; keep one")
        seen[key] = value
    return seen


def _require_out(out: str | None) -> None:
    """Refuse ``--out ""`` (or blanks), which named no folder and fell back to another,
    and ``--out -`` (a folder called ``-``, as other commands' outputs refuse it)."""
    if out is not None and not out.strip():
        raise ExprsimError("--out is empty: give an output folder")
    if out is not None:
        refuse_dash(out, "--out", folder=True)


def cmd_train(args: argparse.Namespace) -> int:
    cfg_path = Path(args.config)
    if not cfg_path.is_file():
        # a pip install has no configs/: say where they are, as --help does
        shipped = f" (not installed with the package: {CONFIGS_NOTE})"
        note = shipped if cfg_path.parts[:1] == ("configs",) else ""
        raise ExprsimError(f"{cfg_path}: no such config file{note}")
    _require_out(args.out)
    try:
        raw = json.loads(cfg_path.read_text(), object_pairs_hook=_no_repeated_keys)
    except _RepeatedKey as exc:
        raise ExprsimError(f"{cfg_path}: {exc}") from exc
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError too
        raise ExprsimError(f"{cfg_path}: not valid JSON ({exc})") from exc
    except OSError as exc:
        raise ExprsimError(f"{cfg_path}: cannot read ({exc.strerror or exc})") from exc
    if not isinstance(raw, dict):
        raise ExprsimError(f"{cfg_path}: expected a JSON object of config fields")
    out = Path(args.out or Path("runs") / cfg_path.stem)
    from exprsim.training import train_from_dict

    try:
        res = train_from_dict(
            raw, out, progress=not args.quiet, length=args.epochs or None, device=args.device
        )
    except ArgumentError as exc:  # a setting of the config (other errors say their own)
        raise ExprsimError(f"{cfg_path}: {exc}") from exc
    except KeyboardInterrupt as exc:
        return _train_interrupted(out, exc)
    done = getattr(res, "iterations_run", None)
    what = count(done, "iteration") if done is not None else count(res.epochs_run, "epoch")
    print(f"trained {what} in {res.seconds:.0f} s -> {printable(str(res.out_dir))}")
    return 0


def _train_interrupted(out: Path, exc: KeyboardInterrupt) -> int:
    """Ctrl-C or SIGTERM during ``exprsim train``: say what the run folder keeps and how
    to go on; exit code 130 (143 for SIGTERM)."""
    from exprsim.interrupts import interruption

    word, code = interruption(exc)
    where = printable(str(out))
    if out.is_dir() and any(out.rglob("state.pt")):
        kept = (
            f"the last checkpoint is kept in {where}; run the same command again (same "
            "--out and --epochs) to resume from it"
        )
    else:
        kept = f"no checkpoint was written yet; the same command starts again in {where}"
    print(f"exprsim train: {word}: {kept}", file=sys.stderr)
    return code


def cmd_ensemble(args: argparse.Namespace) -> int:
    _require_out(args.out)
    for run in args.runs:
        if not Path(run, "config.json").is_file():
            raise ExprsimError(f"{run}: not a finished run folder (no config.json)")
    require_writable(args.out, "--out", folder=True)
    out = Path(args.out).resolve()
    if any(Path(run).resolve() == out for run in args.runs):
        raise ExprsimError(f"--out {args.out} is one of the members: it would be overwritten")
    from exprsim.training.ensemble import compose_ensemble

    with _ensemble_lock(args.out):  # checked and written by one composition at a time
        if (out / "train_config.json").exists():
            raise ExprsimError(
                f"--out {args.out} is a training run folder: its model would be overwritten"
            )
        # compose_ensemble refuses an --out holding another model (not an ensemble's export)
        res = compose_ensemble(  # its refusals are ArgumentError: one line
            args.runs, args.out, angles=args.angles, draws=args.draws, version=args.version
        )
    best = res["chosen"]
    print(
        f"ensemble of {len(args.runs)}: e block {best['e_block']}, angle {best['angle']:g}, "
        f"validation score {best['score']:.4f} -> {printable(str(args.out))}"
    )
    return 0


@contextlib.contextmanager
def _ensemble_lock(out: str) -> Iterator[None]:
    """Hold the run folder lock of ``exprsim train`` (:func:`~exprsim.training.run.run_lock`:
    ``<out>/.lock``, not waiting) on ``out`` while an ensemble is composed there: two
    compositions exporting at once could pair one's ``config.json`` with the other's weights.

    Raises:
        ExprsimError: one line, when another composition or a training holds it.
    """
    from exprsim.training.run import RunBusyError, run_lock

    with contextlib.ExitStack() as held:
        try:
            held.enter_context(run_lock(out))
        except RunBusyError as exc:  # run_lock's words name only `exprsim train`
            raise ExprsimError(
                f"another exprsim ensemble or train{exc.holder} is writing to --out "
                f"{printable(out)}; wait for it to end, or use another --out"
            ) from exc
        yield


def _warn_unfinished(models: Sequence[str]) -> None:
    """One stderr line per run folder among ``models`` whose exported model is not the
    run's current state (being trained, or an extension stopped before its end)."""
    from exprsim.training.run import unfinished_export

    for m in models:
        stale = unfinished_export(m) if Path(m).is_dir() else None
        if stale:
            print(f"exprsim evaluate: warning: {printable(m)} {stale}", file=sys.stderr)


#: the FER+ files an evaluation on FER+ reads (``exprsim.data.fer.load_fer_table``)
def _write_json(path: str | None, doc: Any) -> None:
    """``--json``: :func:`exprsim.io.write_json` (strict, atomic); nothing when not given."""
    if path:
        from exprsim.io import write_json

        write_json(path, doc)


#: the files beside an SQLite database that hold part of it
_SQLITE_SIDES = ("", "-journal", "-wal", "-shm")


def _fec_files(folder: str | None, target: str | None) -> list[tuple[str, Path]]:
    """``(what, file)`` of the files of a folder of `exprsim fec fetch` or `exprsim fec
    crop` (its manifest, the crop index and shards, and ``target`` itself when it is one of
    the fetched images): a report written over one of them destroyed crops that take hours
    to fetch again. Only those files are looked at: the folder's tree (156K images) was
    walked, even without --json, and an odd file anywhere under it failed the command."""
    from exprsim.fec.crops import CROPS_DIR, INDEX_NAME
    from exprsim.fec.fetch import IMAGES_DIR, MANIFEST_NAME

    if not folder or not Path(folder).is_dir():
        return []
    what = f"a file of the FEC crops folder {folder}"
    # the SQLite databases of the fetch folder and of its crop store, with their side files
    databases = [db + side for db in (MANIFEST_NAME, INDEX_NAME) for side in _SQLITE_SIDES]
    out: list[tuple[str, Path]] = []
    for store in (Path(folder), Path(folder) / CROPS_DIR):
        out += [(what, store / name) for name in databases]
        if store.is_dir():  # one folder's names, not its tree
            out += [(what, f) for f in sorted(store.glob("shard-*.npy"))]
    images = (Path(folder) / IMAGES_DIR).resolve()
    if target and Path(target).is_file() and images in Path(target).resolve().parents:
        out.append((f"a fetched FEC image of {folder}", Path(target)))
    return out


def _evaluate_inputs(args: argparse.Namespace, pvae: bool) -> list[tuple[str, Path]]:
    """``(what, file)`` of each file ``exprsim evaluate`` reads or keeps: the models' files,
    and the FEC test CSV, or the FER+ files (with a perceptual-VAE run: those of the FER
    folder it was trained on, and its cached meshes)."""
    files = model_inputs(args.model, *(args.also or ()), every=True)
    if args.fec_test:
        fec = _fec_files(args.fec_crops, args.json_out)
        return [*files, ("the FEC test CSV", Path(args.fec_test)), *fec]
    if not pvae:
        return [*files, *fer_inputs(args.data_dir)]
    from exprsim.pvae.evaluate import run_data

    trained = run_data(args.model)
    meshes = [(f"a cached mesh file of {args.model}", f) for f in trained.mesh_files(args.model)]
    return [*files, *meshes, *fer_inputs(trained.data_dir)]


def cmd_evaluate(args: argparse.Namespace) -> int:
    require_writable(args.json_out, "--json")  # before minutes of evaluation, not after
    if args.fec_crops and not args.fec_test:
        raise ExprsimError("--fec-crops needs --fec-test (the FEC test CSV)")
    pvae = False
    if not args.fec_test:
        from exprsim.pvae.codes import is_pvae_run

        pvae = is_pvae_run(args.model)
    if args.data_dir and (args.fec_test or pvae):
        raise ExprsimError(
            "--data-dir is the FER+ folder of image models; "
            + (
                "FEC test triplets read --fec-crops"
                if args.fec_test
                else "a perceptual-VAE run reads the FER folder of its training config"
            )
        )
    if args.json_out:  # the report never replaces a file the evaluation reads
        require_distinct_outputs([("--json", args.json_out)], _evaluate_inputs(args, pvae))
    _check_exported([args.model, *(args.also or ())])
    _warn_unfinished([args.model, *(args.also or ())])
    if args.fec_test:
        return _evaluate_fec(args)
    _check_also(args.model, args.also or (), pvae)
    if pvae:
        from exprsim.pvae.evaluate import evaluate_pvae

        # the first run's landmark_cache and FER folder (its train_config.json); -q: no bars
        pv_report = evaluate_pvae(
            [args.model, *(args.also or ())], baselines=args.baselines, progress=not args.quiet
        )
        print(pv_report.to_text())
        _write_json(args.json_out, pv_report.to_dict())
        return 0
    from exprsim.evaluate import evaluate_ferplus

    report = evaluate_ferplus(
        args.model,
        baselines=args.baselines,
        data_dir=args.data_dir,
        progress=not args.quiet,
        also=args.also or (),
    )
    print(report.to_text())
    _write_json(args.json_out, report.to_dict())
    return 0


def _check_exported(models: Sequence[str]) -> None:
    """Refuse an image model whose files are missing (a training run not exported yet)
    before the data are read (minutes); perceptual-VAE runs are checked when loaded."""
    from exprsim.models.embedder import check_model_files
    from exprsim.pvae.codes import is_pvae_run

    for m in models:
        if not is_pvae_run(m):
            check_model_files(m)


def _check_also(model: str, also: Sequence[str], pvae: bool) -> None:
    """Refuse an ``--also`` model of the other kind than ``--model``: perceptual-VAE runs
    are scored on face meshes beside each other, image models on FER+ crops.

    Raises:
        ExprsimError: one line naming the model.
    """
    from exprsim.pvae.codes import is_pvae_run

    for other in also:
        if pvae and not is_pvae_run(other):
            raise ExprsimError(
                f"--also {other} is not a perceptual-VAE run: beside the perceptual-VAE run "
                f"{model} only other perceptual-VAE runs are scored (evaluate it on its own)"
            )
        if not pvae and is_pvae_run(other):
            raise ExprsimError(
                f"--also {other} is a perceptual-VAE run, scored on face meshes, not beside "
                f"the image model {model}: use --model {other}"
            )


def _evaluate_fec(args: argparse.Namespace) -> int:
    """``exprsim evaluate --fec-test CSV --fec-crops DIR``: one model on FEC triplets."""
    from exprsim.fec.evaluate import evaluate_fec

    if not args.fec_crops:
        raise ExprsimError("--fec-test needs --fec-crops (the folder of `exprsim fec fetch`)")
    if args.also or args.baselines:
        raise ExprsimError("--fec-test scores one model: --also and --baselines are FER+ only")
    fec_res = evaluate_fec(args.model, args.fec_test, args.fec_crops)
    print(fec_res)
    _write_json(args.json_out, fec_res.to_dict())
    if fec_res.n_triplets == 0:  # nothing was scored: a failure, not a report of zeros
        print(f"exprsim evaluate: no triplet of {args.fec_test} could be scored", file=sys.stderr)
        return 1
    return 0
