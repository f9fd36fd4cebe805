"""``exprsim models | embed | compare | train | evaluate``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from exprsim.errors import ExprsimError, ImageError


def register(sub: Any) -> None:
    p = sub.add_parser("models", help="list registered networks and shipped models")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("embed", help="detect, align and embed every face -> table")
    p.add_argument("paths", nargs="+", help="image files or directories (recursed)")
    p.add_argument("-o", "--out", required=True, help="faces.parquet | faces.csv | faces.jsonl")
    p.add_argument("--model", default="default", help="shipped model name or checkpoint folder")
    p.add_argument("--detector", default="mediapipe")
    p.add_argument("--strict", action="store_true", help="fail if any input fails")
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser(
        "compare", help="pairwise expression distances of faces; the odd one out of three"
    )
    p.add_argument("images", nargs="+", help="two or more images (first face of each)")
    p.add_argument("--model", default="default")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("train", help="train an embedding model from a JSON config")
    p.add_argument("--config", required=True, help="configs/default.json, configs/fec-*.json, ...")
    p.add_argument("--out", help="output folder (default runs/<config name>)")
    p.add_argument("--epochs", type=int, help="override the config's epochs")
    p.set_defaults(func=cmd_train)

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
    return 0


def _write_table(rows: list[dict[str, Any]], out: Path) -> None:
    import pandas as pd

    df = pd.DataFrame(rows)
    suffix = out.suffix.lower()
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".parquet":
        df.to_parquet(out, index=False)
    elif suffix == ".csv":
        df.to_csv(out, index=False)
    elif suffix in (".jsonl", ".json"):
        df.to_json(out, orient="records", lines=True)
    else:
        raise ExprsimError(f"{out}: unknown table format (use .parquet, .csv or .jsonl)")


def cmd_embed(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from exprsim.io import iter_image_files
    from exprsim.models.embedder import load_model

    out = Path(args.out)
    if out.suffix.lower() not in (".parquet", ".csv", ".jsonl", ".json"):
        raise ExprsimError(f"{out}: unknown table format (use .parquet, .csv or .jsonl)")
    embedder = load_model(args.model)
    files = list(iter_image_files(args.paths))
    if not files:
        raise ExprsimError("no image files found in the given paths")
    rows: list[dict[str, Any]] = []
    failed = 0
    for path in tqdm(files, desc="embed", unit="img", disable=args.quiet or len(files) < 4):
        try:
            faces = embedder.embed_images([path], detector=args.detector)
        except ImageError as exc:
            failed += 1
            tqdm.write(f"exprsim embed: {exc}", file=sys.stderr)  # above the bar, not on it
            continue
        rows.extend(f.to_dict() | {"model": embedder.config.name_version} for f in faces)
    _write_table(rows, out)
    print(f"{len(rows)} faces from {len(files) - failed}/{len(files)} images -> {out}")
    if failed and (args.strict or failed == len(files)):
        return 1
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    import numpy as np

    from exprsim.models.embedder import load_model

    if len(args.images) < 2:
        raise ExprsimError("compare needs at least two images")
    embedder = load_model(args.model)
    embs = []
    for path in args.images:
        faces = embedder.embed_images([path])
        if not faces:
            raise ExprsimError(f"{path}: no face found")
        embs.append(faces[0].embedding)
    e = np.stack(embs)
    d = np.linalg.norm(e[:, None] - e[None], axis=-1)
    result: dict[str, Any] = {"images": args.images, "distances": d.round(4).tolist()}
    if len(args.images) == 3:
        pair_d = [d[1, 2], d[0, 2], d[0, 1]]  # pair excluding face 0, 1, 2
        odd = int(np.argmin(pair_d))
        result["odd_one_out"] = args.images[odd]
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    names = [Path(p).name for p in args.images]
    width = max(len(n) for n in names)
    print(" " * width + "  " + "  ".join(f"{i:>6d}" for i in range(len(names))))
    for i, n in enumerate(names):
        print(f"{n:<{width}}  " + "  ".join(f"{v:6.3f}" for v in d[i]))
    if "odd_one_out" in result:
        print(f"odd one out: {result['odd_one_out']}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from dataclasses import replace

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
    kind = raw.pop("kind", "ferplus")
    res: Any
    try:
        if kind == "fec":
            from exprsim.config import from_dict
            from exprsim.fec.train import FECTrainConfig, train_fec

            fcfg = from_dict(FECTrainConfig, {"kind": kind, **raw})
            res = train_fec(fcfg, out, progress=not args.quiet)
        elif kind == "pvae":
            from exprsim.config import from_dict
            from exprsim.pvae.train import PVAETrainConfig, train_pvae

            pcfg = from_dict(PVAETrainConfig, {"kind": kind, **raw})
            res = train_pvae(pcfg, out, progress=not args.quiet)
        elif kind == "ferplus":
            from exprsim.config import from_dict
            from exprsim.train import TrainConfig, train

            cfg = from_dict(TrainConfig, raw)
            if args.epochs:
                cfg = replace(cfg, epochs=args.epochs)
            res = train(cfg, out, progress=not args.quiet)
        else:
            raise ExprsimError(f"{cfg_path}: unknown kind {kind!r} (ferplus, fec or pvae)")
    except ValueError as exc:
        raise ExprsimError(f"{cfg_path}: {exc}") from exc
    done = getattr(res, "iterations_run", None)
    what = f"{done} iterations" if done is not None else f"{res.epochs_run} epochs"
    print(f"trained {what} in {res.seconds:.0f} s -> {res.out_dir}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    if args.fec_test:
        from exprsim.fec.evaluate import evaluate_fec

        if not args.fec_crops:
            raise ExprsimError("--fec-test needs --fec-crops (the folder of `exprsim fec fetch`)")
        fec_res = evaluate_fec(args.model, args.fec_test, args.fec_crops)
        print(fec_res)
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
