"""``exprsim models | embed | compare | train | ensemble | evaluate``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from exprsim.cli.argtypes import (
    int_at_least,
    require_distinct_outputs,
    require_paths,
    require_writable,
)
from exprsim.cli.exitcodes import failure_exit_code
from exprsim.errors import ExprsimError, ImageError
from exprsim.faces.detect import DEFAULT_DETECTOR


def register(sub: Any) -> None:
    p = sub.add_parser("models", help="list registered networks and shipped models")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("embed", help="detect, align and embed every face -> table")
    p.add_argument(
        "paths",
        nargs="+",
        help="image files or directories (recursed); with --engine ray also a glob or a "
        "Parquet/CSV list of paths or URIs",
    )
    p.add_argument(
        "-o",
        "--out",
        required=True,
        help="faces.parquet | faces.csv | faces.jsonl | faces.json; with --engine ray a folder "
        "of Parquet shards",
    )
    p.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local (this process) or ray (Ray Data actors; resumable shards)",
    )
    p.add_argument("--address", help="with --engine ray: auto, ray://host:port (default: local)")
    p.add_argument(
        "--workers",
        type=int_at_least(1),
        default=2,
        help="front-end threads (local) or Ray actors (default 2)",
    )
    p.add_argument("--shard-size", type=int_at_least(1), default=256, help="images per shard")
    p.add_argument(
        "--no-retry-failed",
        dest="retry_failed",
        action="store_false",
        help="with --engine ray: skip every finished shard (by default a rerun tries again "
        "the unreadable images a shard recorded in its .failed.json)",
    )
    p.add_argument("--model", default="default", help="shipped model name or checkpoint folder")
    p.add_argument("--detector", default=DEFAULT_DETECTOR)
    p.add_argument("--strict", action="store_true", help="fail if any input fails")
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser(
        "compare", help="pairwise expression distances of faces; the odd one out of three"
    )
    p.add_argument("images", nargs="+", help="two or more images (first face of each)")
    p.add_argument("--model", default="default")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_compare)

    _register_train(sub)

    p = sub.add_parser("evaluate", help="evaluate a model on FER+ PublicTest (or FEC test)")
    p.add_argument("--model", default="default", help="shipped model name or checkpoint folder")
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
    p.add_argument("--fec-test", help="FEC test CSV (evaluates FEC triplets instead)")
    p.add_argument("--fec-crops", help="folder written by `exprsim fec fetch` (with --fec-test)")
    p.add_argument("--json", dest="json_out", help="also write the report as JSON here")
    p.set_defaults(func=cmd_evaluate)


def _register_train(sub: Any) -> None:
    p = sub.add_parser(
        "train",
        help='train a learner from a JSON config (its "recipe": see `exprsim models`)',
    )
    p.add_argument("--config", required=True, help="configs/default.json, configs/fec-*.json, ...")
    p.add_argument(
        "--out", help="output folder (default runs/<config name>; resumed if it holds the run)"
    )
    p.add_argument(
        "--epochs",
        type=int_at_least(1),
        help="override the config's length (epochs; iterations for fec and pvae; levels for "
        "sgm-subspaces)",
    )
    p.add_argument(
        "--device", help="ferplus recipe: cpu, cuda, cuda:N or auto (resumable anywhere)"
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "ensemble",
        help="compose trained exprnet_v runs into one model (readout chosen on validation)",
    )
    p.add_argument("runs", nargs="+", help="run folders holding out the same validation faces")
    p.add_argument("--out", required=True, help="folder for config.json + model.safetensors")
    p.add_argument(
        "--angles", type=float, nargs="+", default=[0.0, 15.0, 30.0, 45.0],
        help="readout angles tried (degrees; default 0 15 30 45)",
    )  # fmt: skip
    p.add_argument(
        "--draws", type=int_at_least(1), default=10, help="validation triplet draws of 3,000"
    )
    p.add_argument("--version", default="ens", help="model version stored in config.json")
    p.set_defaults(func=cmd_ensemble)


def cmd_models(args: argparse.Namespace) -> int:
    from exprsim.models.embedder import SHIPPED
    from exprsim.models.registry import list_models, model_spec

    print("registered networks (create_model):")
    for name in list_models():
        spec = model_spec(name)
        print(
            f"  {name:<20} {spec.in_channels}x{spec.input_size}x{spec.input_size}  {spec.description}"
        )
    print("shipped models (load_model):")
    for name in SHIPPED:
        print(f"  {name}")
    from exprsim.training import recipes

    print('learners (exprsim train --config: the config\'s "recipe"):')
    for recipe in recipes():
        print(f"  {recipe.name:<20} {recipe.description}")
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    require_paths(args.paths)  # "" would name the working folder
    # a file named as an input (a list of paths, with ray) is not overwritten by -o
    require_distinct_outputs([("--out", args.out)], [("an input file", p) for p in args.paths])
    if args.engine == "ray":
        return _embed_ray(args)
    from tqdm import tqdm

    from exprsim.apps.embed import embed_files
    from exprsim.faces.pipeline import FACE_COLUMNS
    from exprsim.io import TableWriter, check_table_path
    from exprsim.models.embedder import load_model

    out = check_table_path(args.out)
    embedder = load_model(args.model)

    def report(name: str, exc: ImageError) -> None:
        tqdm.write(f"exprsim embed: {exc}", file=sys.stderr)  # above the bar, not on it

    # rows stream to the file as they are made: bounded memory, and an interrupted run
    # keeps (and says) what it had done
    columns = [*FACE_COLUMNS, "model", *(f"e{i}" for i in range(embedder.embedding_dim))]
    with TableWriter(out, columns) as writer:
        try:
            table = embed_files(
                args.paths,
                embedder,
                detector=args.detector,
                progress=not args.quiet,
                on_error=report,
                sink=writer.write,
                workers=args.workers,
            )
        except KeyboardInterrupt:
            writer.close()
            print(f"interrupted: {writer.rows} faces saved -> {out}", file=sys.stderr)
            return 130
    failed = len(table.errors)
    sec = table.stats.get("seconds", 0.0)
    rate = f" in {sec:.1f} s ({table.n_faces / sec:.1f} faces/s)" if sec > 0 else ""
    print(f"{table.n_faces} faces from {table.files - failed}/{table.files} images{rate} -> {out}")
    return failure_exit_code(failed, table.files, args.strict)


def _embed_ray(args: argparse.Namespace) -> int:
    from exprsim.scale import embed_with_ray

    rep = embed_with_ray(
        args.paths[0] if len(args.paths) == 1 else args.paths,
        args.out,
        address=args.address,
        model=args.model,
        detector=args.detector,
        num_workers=args.workers,
        shard_size=args.shard_size,
        progress=not args.quiet,
        retry_failed=args.retry_failed,
    )
    for line in rep.errors:  # one line per unreadable image, as the local engine prints
        print(f"exprsim embed: {line}", file=sys.stderr)
    print(rep.summary())
    # judged against the whole input list: a rerun that only retried a broken image has
    # not failed on every input
    return failure_exit_code(rep.failed, max(rep.inputs, rep.images), args.strict)


def cmd_compare(args: argparse.Namespace) -> int:
    from exprsim.apps.compare import compare_images
    from exprsim.models.embedder import load_model

    if len(args.images) < 2:
        raise ExprsimError("compare needs at least two images")
    require_paths(args.images, "IMAGE")
    result = compare_images(args.images, load_model(args.model))
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    names = [Path(p).name for p in args.images]
    if len(set(names)) < len(names):  # a/x.jpg and b/x.jpg: show the paths as given
        names = list(args.images)
    width = max(len(n) for n in names)
    print(" " * width + "  " + "  ".join(f"{i:>6d}" for i in range(len(names))))
    for i, n in enumerate(names):
        print(f"{n:<{width}}  " + "  ".join(f"{v:6.3f}" for v in result.distances[i]))
    if result.odd_one_out is not None:
        print(f"odd one out: {args.images[result.odd_one_out]}")
    elif len(args.images) == 3:
        print("odd one out: none (no pair is closer than the others)")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    cfg_path = Path(args.config)
    if not cfg_path.is_file():
        raise ExprsimError(f"{cfg_path}: no such config file")
    try:
        raw = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
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
    except ValueError as exc:
        raise ExprsimError(f"{cfg_path}: {exc}") from exc
    done = getattr(res, "iterations_run", None)
    what = f"{done} iterations" if done is not None else f"{res.epochs_run} epochs"
    print(f"trained {what} in {res.seconds:.0f} s -> {res.out_dir}")
    return 0


def cmd_ensemble(args: argparse.Namespace) -> int:
    for run in args.runs:
        if not Path(run, "config.json").is_file():
            raise ExprsimError(f"{run}: not a finished run folder (no config.json)")
    require_writable(args.out, "--out", folder=True)
    out = Path(args.out).resolve()
    if any(Path(run).resolve() == out for run in args.runs):
        raise ExprsimError(f"--out {args.out} is one of the members: it would be overwritten")
    if (out / "train_config.json").exists():
        raise ExprsimError(
            f"--out {args.out} is a training run folder: its model would be overwritten"
        )
    from exprsim.training.ensemble import compose_ensemble

    try:
        res = compose_ensemble(
            args.runs, args.out, angles=args.angles, draws=args.draws, version=args.version
        )
    except ValueError as exc:
        raise ExprsimError(str(exc)) from exc
    best = res["chosen"]
    print(
        f"ensemble of {len(args.runs)}: e block {best['e_block']}, angle {best['angle']:g}, "
        f"validation score {best['score']:.4f} -> {args.out}"
    )
    return 0


def _model_files(models: list[str]) -> list[tuple[str, Path]]:
    """``(what, file)`` of the files in each model given as a folder (not a shipped name)."""
    out: list[tuple[str, Path]] = []
    for m in models:
        if Path(m).is_dir():
            out += [(f"a file of the model {m}", f) for f in Path(m).iterdir() if f.is_file()]
    return out


def cmd_evaluate(args: argparse.Namespace) -> int:
    require_writable(args.json_out, "--json")  # before minutes of evaluation, not after
    require_distinct_outputs(  # the report never replaces a model's file or the test CSV
        [("--json", args.json_out)],
        [
            *_model_files([args.model, *(args.also or ())]),
            *([("the FEC test CSV", args.fec_test)] if args.fec_test else []),
        ],
    )
    if args.fec_crops and not args.fec_test:
        raise ExprsimError("--fec-crops needs --fec-test (the FEC test CSV)")
    if args.fec_test:
        from exprsim.fec.evaluate import evaluate_fec

        if not args.fec_crops:
            raise ExprsimError("--fec-test needs --fec-crops (the folder of `exprsim fec fetch`)")
        if args.also or args.baselines:
            raise ExprsimError("--fec-test scores one model: --also and --baselines are FER+ only")
        fec_res = evaluate_fec(args.model, args.fec_test, args.fec_crops)
        print(fec_res)
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(fec_res.to_dict(), indent=2) + "\n")
        if fec_res.n_triplets == 0:  # nothing was scored: a failure, not a report of zeros
            print(
                f"exprsim evaluate: no triplet of {args.fec_test} could be scored", file=sys.stderr
            )
            return 1
        return 0
    from exprsim.pvae.codes import is_pvae_run

    if is_pvae_run(args.model):
        from exprsim.pvae.evaluate import evaluate_pvae

        pv_report = evaluate_pvae([args.model], baselines=args.baselines)
        print(pv_report.to_text())
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(pv_report.to_dict(), indent=2) + "\n")
        return 0
    from exprsim.evaluate import evaluate_ferplus

    report = evaluate_ferplus(
        args.model, baselines=args.baselines, progress=not args.quiet, also=args.also or ()
    )
    print(report.to_text())
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return 0
