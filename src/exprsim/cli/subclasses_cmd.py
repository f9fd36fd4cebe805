"""``exprsim subclasses``: sub-expressions of each emotion class (EM in the embedding) -> HTML.

A thin shell over :func:`exprsim.apps.subclasses.discover_subexpressions`.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from exprsim.errors import ExprsimError

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
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
    p.add_argument("--max-faces", type=int, help="with --fer: a seeded random subset of N faces")
    p.add_argument("--data-dir", help="FER folder (default ../shared/data/fer2013)")
    p.add_argument(
        "--labels",
        choices=("predict", "folder", "none"),
        default="predict",
        help="classes of image-folder faces (default: kNN prediction)",
    )
    p.add_argument(
        "--components",
        default="bic",
        help="sub-classes per class: 'bic' (lowest BIC in 1..--max-components) or a number "
        "(paper: 5)",
    )
    p.add_argument("--max-components", type=int, default=5)
    p.add_argument(
        "--min-per-component",
        type=int,
        default=5,
        help="a class of m faces gets at most m // N sub-classes (default 5)",
    )
    p.add_argument(
        "--covariance",
        default="spherical",
        choices=("spherical", "diag", "full", "tied"),
        help="mixture covariance (default spherical, as SGM's isotropic Gaussians)",
    )
    p.add_argument("--top", type=int, default=16, help="faces shown per sub-class (default 16)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default="default", help="shipped model name or checkpoint folder")
    p.add_argument("--detector", default=None)
    p.add_argument("--html", metavar="FILE", default="subclasses.html", help="output page")
    p.add_argument("--json", dest="json_out", metavar="FILE", help="also write a JSON summary")
    p.add_argument("--map", default="auto", choices=("auto", "umap", "tsne", "pca"))
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


def _fer_faces(args: argparse.Namespace, embedder: Any) -> tuple[Any, ...]:
    from exprsim.apps.classify import embed_fer
    from exprsim.data.fer import FERPLUS_CLASSES, load_ferplus

    split = load_ferplus(args.fer, args.data_dir)
    idx = np.arange(len(split))
    if args.max_faces and args.max_faces < len(split):
        idx = np.sort(np.random.default_rng(args.seed).permutation(len(split))[: args.max_faces])
    split = split.subset(idx)
    emb = embed_fer(embedder, split.images, progress=not args.quiet)
    sources = [f"fer2013 row {int(r)}" for r in split.rows]
    return emb, split.majority, FERPLUS_CLASSES, list(split.images), sources


def _folder_faces(args: argparse.Namespace, embedder: Any) -> tuple[Any, ...]:
    from exprsim.io import iter_image_files

    files = [str(f) for f in iter_image_files(args.paths)]
    if not files:
        raise ExprsimError("no image files found in the given paths")
    faces = embedder.embed_images(files, detector=args.detector, progress=not args.quiet)
    if not faces:
        raise ExprsimError("no faces found")
    emb = np.stack([f.embedding for f in faces]).astype(np.float32)
    if args.labels == "predict":
        from exprsim.apps.classify import load_reference_set
        from exprsim.errors import ModelError

        ref = load_reference_set()
        if ref.model != embedder.config.name_version:
            raise ModelError(
                f"the kNN reference set was made with {ref.model}, not "
                f"{embedder.config.name_version}: use --labels folder or --labels none"
            )
        knn = ref.classifier()
        labels = knn.predict(emb)
        names = tuple(str(c) for c in ref.classes)
        if labels.dtype.kind not in "iu":  # class names -> ids
            labels = np.array([names.index(str(v)) for v in labels], np.int64)
    elif args.labels == "folder":
        parents = [Path(f.source).parent.name for f in faces]
        names = tuple(sorted(set(parents)))
        labels = np.array([names.index(p) for p in parents], np.int64)
    else:
        names, labels = ("all",), np.zeros(len(faces), np.int64)
    crops = [f.aligned.crop for f in faces]
    sources = [f"{f.source}#{f.face_index}" for f in faces]
    return emb, labels, names, crops, sources


def cmd_subclasses(args: argparse.Namespace) -> int:
    from exprsim.apps.subclasses import discover_subexpressions, subexpressions_page
    from exprsim.models.embedder import load_model

    if bool(args.fer) == bool(args.paths):
        raise ExprsimError("give image PATHs or --fer SPLIT (one of the two)")
    n_components = _components(args.components)
    embedder = load_model(args.model)
    faces = _fer_faces if args.fer else _folder_faces
    emb, labels, names, crops, sources = faces(args, embedder)
    report = discover_subexpressions(
        emb,
        labels,
        class_names=names,
        n_components=n_components,
        max_components=args.max_components,
        min_per_component=args.min_per_component,
        covariance_type=args.covariance,
        top_k=args.top,
        seed=args.seed,
        crops=crops,
        sources=sources,
    )
    what = f"FER+ {args.fer}" if args.fer else ", ".join(args.paths)
    page = subexpressions_page(
        report,
        title=f"Sub-expressions: {what} ({embedder.config.name_version})",
        map_method=args.map,
    )
    out = page.save(args.html)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    print(f"{len(emb)} faces, {report.split.n_subclasses} sub-classes -> {out}")
    for s in report.subexpressions:
        print(f"  {s.parent_name}-{s.rank + 1}: {s.size} faces")
    return 0
