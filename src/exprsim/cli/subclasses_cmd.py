"""``exprsim subclasses``: sub-expressions of each emotion class (EM in the embedding) -> HTML.

A thin shell over :func:`exprsim.apps.subclasses.discover_subexpressions`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from exprsim.apps.labels import LABEL_METHODS
from exprsim.apps.subclasses import COVARIANCE_TYPES
from exprsim.cli.argtypes import (
    DATA_DIR_HELP,
    MODEL_HELP,
    command_parsers,
    detector_help,
    expand_image_paths,
    fer_inputs,
    int_at_least,
    model_inputs,
    require_distinct_outputs,
    require_writable,
)
from exprsim.cli.exitcodes import report_failures
from exprsim.errors import ExprsimError, printable
from exprsim.wording import count

log = logging.getLogger(__name__)

#: ``--max-components`` when not given (it applies only to ``--components bic``)
DEFAULT_MAX_COMPONENTS = 5


def register(sub: Any) -> None:
    command_parsers(sub)
    p = sub.add_parser(
        "subclasses",
        help="discover sub-expressions within each emotion class (EM) -> HTML page",
        description=(
            "Embed a face set, split each emotion class by a Gaussian mixture (EM) in the "
            "embedding, and write a page with each sub-class's medoid and nearest faces "
            "(Marrero Fernandez et al., Deep Gaussian Mixture Sub-space). Classes: FER+ "
            "majority votes with --fer; for image folders the kNN emotion prediction "
            "(--labels predict, needs the model's reference set), the parent folder name "
            "(--labels folder) or one class (--labels none)."
        ),
    )
    p.add_argument("paths", nargs="*", metavar="PATH", help="image files or folders")
    p.add_argument("--fer", choices=("Training", "PublicTest"), help="use a FER+ split instead")
    p.add_argument(
        "--max-faces", type=int_at_least(1), help="with --fer: a seeded random subset of N faces"
    )
    p.add_argument("--data-dir", metavar="DIR", help=f"with --fer: {DATA_DIR_HELP}")
    p.add_argument(
        "--labels",
        choices=LABEL_METHODS,
        default=None,
        help="classes of image-folder faces (default: predict, the kNN prediction)",
    )
    p.add_argument(
        "--components",
        default="bic",
        help="sub-classes per class: 'bic' (the default: lowest BIC in 1..--max-components) "
        "or a number (paper: 5)",
    )
    p.add_argument(
        "--max-components",
        type=int_at_least(1),
        default=None,
        help=f"largest N for 'bic' (default {DEFAULT_MAX_COMPONENTS})",
    )
    p.add_argument(
        "--min-per-component",
        type=int_at_least(1),
        default=5,
        help="a class of m faces gets at most m // N sub-classes (default 5)",
    )
    p.add_argument(
        "--covariance",
        default="spherical",
        choices=COVARIANCE_TYPES,
        help="mixture covariance (default spherical, as SGM's isotropic Gaussians)",
    )
    p.add_argument(
        "--top", type=int_at_least(1), default=16, help="faces shown per sub-class (default 16)"
    )
    p.add_argument(
        "--seed",
        type=int_at_least(0, 2**32 - 1),
        default=0,
        help="EM and sampling seed, 0 to 2**32 - 1 (default 0)",
    )
    p.add_argument("--model", default="default", help=MODEL_HELP)
    p.add_argument("--detector", default=None, help=detector_help())
    p.add_argument(
        "--html",
        metavar="FILE",
        default="subclasses.html",
        help="the output page (default subclasses.html in the working folder, replaced if "
        "it exists)",
    )
    p.add_argument("--json", dest="json_out", metavar="FILE", help="also write a JSON summary")
    p.add_argument(
        "--map",
        default="auto",
        choices=("auto", "umap", "tsne", "pca"),
        help="2-d map of the faces on the page (default auto: UMAP when umap-learn is "
        "installed, else t-SNE; PCA for fewer than 5 distinct faces)",
    )
    p.set_defaults(func=cmd_subclasses)


def _components(value: str) -> int | str:
    if value == "bic":
        return value
    try:
        n = int(value)
    except ValueError as exc:
        raise ExprsimError(f"--components must be 'bic' or a number, got {value!r}") from exc
    if n < 1:
        raise ExprsimError("--components must be >= 1")
    return n


def _check_combinations(args: argparse.Namespace) -> None:
    """Refuse options that the other source of faces would ignore without a word."""
    if args.fer:  # FER+ faces come cropped and labelled
        for flag, value in (("--labels", args.labels), ("--detector", args.detector)):
            if value is not None:
                raise ExprsimError(f"{flag} is only used with image PATHs, not --fer")
    else:
        for flag, value in (("--max-faces", args.max_faces), ("--data-dir", args.data_dir)):
            if value is not None:
                raise ExprsimError(f"{flag} is only used with --fer (image PATHs were given)")


def _check_outputs(args: argparse.Namespace) -> list[str]:
    """The input images (none with --fer), once the outputs are known to be writable and to
    overwrite no input: an image, a file of the --model folder, a FER+ data file."""
    require_writable(args.html, "--html")  # before minutes of embedding, not after
    require_writable(args.json_out, "--json")
    files = [] if args.fer else expand_image_paths(args.paths)
    require_distinct_outputs(
        [("--html", args.html), ("--json", args.json_out)],
        [
            *(("an input image", f) for f in files),
            *model_inputs(args.model),
            *(fer_inputs(args.data_dir) if args.fer else ()),
        ],
    )
    return files


def cmd_subclasses(args: argparse.Namespace) -> int:
    from exprsim.apps.labels import ferplus_faces, label_image_faces
    from exprsim.apps.subclasses import discover_subexpressions, subexpressions_page
    from exprsim.io import json_text, write_together
    from exprsim.models.embedder import load_model
    from exprsim.report import plots

    if bool(args.fer) == bool(args.paths):
        raise ExprsimError("give image PATHs or --fer SPLIT (one of the two)")
    _check_combinations(args)
    n_components = _components(args.components)
    if n_components != "bic" and args.max_components is not None:
        raise ExprsimError("--max-components is only used with --components bic")
    plots.check_map_method(args.map)  # umap-learn missing: said now, not after the embedding
    files = _check_outputs(args)
    embedder = load_model(args.model)
    rc = 0
    if args.fer:
        faces = ferplus_faces(
            args.fer,
            embedder,
            max_faces=args.max_faces,
            seed=args.seed,
            data_dir=args.data_dir,
            progress=not args.quiet,
        )
    else:
        failures: list[Any] = []
        try:  # an unreadable image is skipped and reported, as in the other album commands
            faces = label_image_faces(
                files,
                embedder,
                args.labels or "predict",
                detector=args.detector,
                progress=not args.quiet,
                failures=failures,
            )
        finally:
            rc = report_failures("subclasses", failures, len(files))
    report = discover_subexpressions(
        faces.embeddings,
        faces.labels,
        class_names=faces.class_names,
        n_components=n_components,
        max_components=args.max_components or DEFAULT_MAX_COMPONENTS,
        min_per_component=args.min_per_component,
        covariance_type=args.covariance,
        top_k=args.top,
        seed=args.seed,
        crops=faces.crops,
        sources=faces.sources,
    )
    what = f"FER+ {args.fer}" if args.fer else ", ".join(args.paths)
    if len(what) > 80:  # an expanded glob of 180 files: name the first and count the rest
        what = f"{args.paths[0]} and {len(args.paths) - 1} more"
    page = subexpressions_page(
        report,
        title=f"Sub-expressions: {what} ({embedder.config.name_version})",
        map_method=args.map,
    )
    # the page and its strict JSON: both written, or neither (the earlier ones stay)
    outputs = [(Path(args.html), page.encoded())]
    if args.json_out:
        outputs.append((Path(args.json_out), json_text(report.to_dict()).encode("utf-8")))
    for path, _ in outputs:
        path.parent.mkdir(parents=True, exist_ok=True)
    out = write_together(outputs)[0]
    print(
        f"{count(len(faces), 'face')}, {count(report.split.n_subclasses, 'sub-class', 'sub-classes')} -> {printable(str(out))}"
    )
    for s in report.subexpressions:
        print(f"  {s.parent_name}-{s.rank + 1}: {count(s.size, 'face')}")
    return rc
