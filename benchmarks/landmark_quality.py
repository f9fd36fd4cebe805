"""Does the landmark model matter for the embedding? The whole pipeline on validation faces.

Each of the 1,408 FER+ validation faces (the held-out 5% of Training that every model choice
is made on; never PublicTest) is scaled to a random side of 150-260 px and pasted at a
random place on a 640x480 blurred-noise canvas, optionally rolled by a random angle up to
``--roll`` degrees about its centre. The default detector's BlazeFace passes find it once
(``landmarks="keypoints"``); then each landmark source gives the 5 alignment points for the
same box:

* ``mesh``: the face-mesh graph (``MeshLandmarker``, 478 points; the ``mediapipe-mesh``
  detector);
* ``mesh-lite``: the 468-point landmark model on LiteRT (``LiteMeshLandmarker``; the default
  detector);
* ``keypoints``: BlazeFace's own keypoints with approximate mouth corners.

A face a landmark model refuses keeps BlazeFace's keypoints, as the detectors do
(``on_landmark_failure="approximate"``); the refusals are counted. Each set of points is
aligned (default ``AlignConfig``) and embedded with the shipped model. Reported per source,
on every face the detector found: vote-triplet accuracy (3,000 triplets drawn by the
evaluation's rule among those faces), kNN11 accuracy against the Training faces' embeddings
(the other 95%, raw crops, as ``exprsim evaluate`` does), the network's own emotion accuracy
(argmax p against the vote majority), and the distance of each face's embedding to its
face-mesh embedding. The raw 48x48 crops (no detection, no
alignment) are the reference row.

    .venv/bin/python benchmarks/landmark_quality.py --json docs/results/landmarks-upright.json
    .venv/bin/python benchmarks/landmark_quality.py --roll 25 --seed 1 \\
        --json docs/results/landmarks-rolled.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np

SOURCES = ("mesh", "mesh-lite", "keypoints")
CANVAS = (640, 480)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0, help="seed of sizes, places and rolls")
    ap.add_argument("--roll", type=float, default=0.0, help="max roll in degrees (0: upright)")
    ap.add_argument("--limit", type=int, default=None, help="first N validation faces only")
    ap.add_argument("--triplets", type=int, default=3000, help="vote triplets drawn")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args(argv)
    if args.roll < 0 or args.triplets < 3 or (args.limit is not None and args.limit < 30):
        ap.error("--roll must be >= 0, --triplets >= 3, --limit >= 30")
    return args


def paste(face: np.ndarray, rng: np.random.Generator, roll: float) -> np.ndarray:
    """One ``(480, 640, 3)`` uint8 canvas holding ``face`` (gray ``(48, 48)``) at a random
    side (150-260 px), place and roll (uniform in ``[-roll, roll]`` degrees)."""
    w, h = CANVAS
    side = int(rng.integers(150, 261))
    bg = rng.normal(110, 25, (h, w))
    x, y = int(rng.integers(0, w - side)), int(rng.integers(0, h - side))
    angle = float(rng.uniform(-roll, roll)) if roll else 0.0
    return place(face, bg, side, x, y, angle)


def place(
    face: np.ndarray, noise: np.ndarray, side: int, x: int, y: int, angle: float
) -> np.ndarray:
    """``face`` scaled to ``side`` with its top-left corner at ``(x, y)``, turned by
    ``angle`` degrees (counter-clockwise on screen) about its centre, over ``noise`` (the
    canvas, blurred; only the face turns, so no part of it is mirrored into the corners)."""
    import cv2

    h, w = noise.shape
    bg = cv2.GaussianBlur(np.clip(noise, 0, 255).astype(np.uint8), (0, 0), 3)
    layer = np.zeros((h, w), np.float32)
    mask = np.zeros((h, w), np.float32)
    layer[y : y + side, x : x + side] = cv2.resize(
        face, (side, side), interpolation=cv2.INTER_CUBIC
    )
    mask[y : y + side, x : x + side] = 1.0
    if angle:
        m = cv2.getRotationMatrix2D((x + (side - 1) / 2, y + (side - 1) / 2), angle, 1.0)
        layer = cv2.warpAffine(layer, m, (w, h), flags=cv2.INTER_LINEAR)
        mask = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_LINEAR)
    out = bg * (1.0 - mask) + layer
    out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.repeat(out[:, :, None], 3, axis=2))


def run(args: argparse.Namespace) -> dict[str, Any]:
    from exprsim import metrics
    from exprsim.data.fer import load_ferplus
    from exprsim.data.split import holdout_split
    from exprsim.data.triplets import validation_triplets
    from exprsim.faces.align import AlignConfig, align_face
    from exprsim.faces.backends.mediapipe import MediaPipeDetector
    from exprsim.faces.landmarks import LiteMeshLandmarker, MeshLandmarker
    from exprsim.models.embedder import load_model

    rng = np.random.default_rng(args.seed)
    train = load_ferplus("Training", drop_duplicates_of="PublicTest")
    tr, va = holdout_split(len(train), 0.05, 0)
    val = train.subset(va if args.limit is None else va[: args.limit])
    det = MediaPipeDetector(landmarks="keypoints")
    mesh, lite = MeshLandmarker(), LiteMeshLandmarker()
    cfg = AlignConfig()
    crops: dict[str, list[np.ndarray]] = {s: [] for s in SOURCES}
    off: dict[str, list[float]] = {"mesh-lite": [], "keypoints": []}
    kept: list[int] = []
    not_found = 0
    refused = {"mesh": 0, "mesh-lite": 0}
    t0 = time.perf_counter()
    for i, face in enumerate(val.images):
        image = paste(face, rng, args.roll)
        faces = det.detect(image)
        if not faces:
            not_found += 1
            continue
        f = max(faces, key=lambda f: float(f.box[2] - f.box[0]))
        found = {
            "mesh": mesh.landmarks(image, f.box),
            "mesh-lite": lite.landmarks(image, f.box, hint=f.landmarks),
        }
        points: dict[str, np.ndarray] = {"keypoints": np.asarray(f.landmarks)}
        for s, p in found.items():  # a refused face keeps the keypoints, as the detectors do
            refused[s] += p is None
            points[s] = points["keypoints"] if p is None else np.asarray(p)
        for s in SOURCES:
            crops[s].append(align_face(image, points[s], cfg))
        ref = found["mesh"]
        if ref is not None:  # how far each source's own points are from the mesh's
            eye = float(np.linalg.norm(ref[1] - ref[0]))
            for s in off:
                own = found.get(s, points[s])  # None: mesh-lite refused (keypoints never do)
                if own is not None:
                    off[s].append(float(np.linalg.norm(own - ref, axis=1).mean() / eye))
        kept.append(i)
    front_s = time.perf_counter() - t0
    sub = val.subset(np.array(kept))
    model = load_model()
    tr_emb = model.embed_crops(train.images[tr])
    tr_lab = train.majority[tr]
    trip = validation_triplets(sub, n=args.triplets, seed=0)
    inputs = {"raw 48x48 crops": sub.images} | {s: np.stack(c) for s, c in crops.items()}
    emb = {k: model.embed_crops(v) for k, v in inputs.items()}
    rows: dict[str, dict[str, Any]] = {}
    for k, e in emb.items():
        ta = metrics.triplet_accuracy(e, trip.i, trip.j, trip.k, trip.odd, trip.ttype)
        pred = metrics.knn_predict(tr_emb, tr_lab, e, k=11, n_classes=8)
        proba = model.emotion_proba(inputs[k])
        row: dict[str, Any] = {
            "triplets": ta["all"],
            "triplets_one_two_three": [ta["one"], ta["two"], ta["three"]],
            "knn11": float((pred == sub.majority).mean()),
            "head": float((proba.argmax(1) == sub.majority).mean()) if proba is not None else None,
        }
        if k != "mesh":
            d = np.linalg.norm(e - emb["mesh"], axis=1)
            row["dist_to_mesh_median"] = float(np.median(d))
            row["dist_to_mesh_p90"] = float(np.percentile(d, 90))
        if k in off:
            row["points_off_mesh_median_eye_dist"] = float(np.median(off[k]))
        rows[k] = row
    return {
        "seed": args.seed,
        "roll_max_deg": args.roll,
        "faces": len(val),
        "not_found": not_found,
        "refused_by_landmark_model": refused,
        "scored": len(kept),
        "n_triplets": len(trip.i),
        "front_end_s": round(front_s, 1),
        "model": model.config.name_version,
        "rows": rows,
    }


def report(res: dict[str, Any]) -> str:
    lines = [
        f"{res['scored']} of {res['faces']} validation faces scored (not found "
        f"{res['not_found']}; refused by the landmark model, so aligned on the keypoints: "
        f"{res['refused_by_landmark_model']}); roll up to "
        f"{res['roll_max_deg']:g} deg; {res['n_triplets']} triplets; model {res['model']}",
        f"{'source':16s} {'triplets':>8s} {'kNN11':>7s} {'head':>7s} {'to mesh (median)':>17s}",
    ]
    for k, r in res["rows"].items():
        dist = r.get("dist_to_mesh_median")
        lines.append(
            f"{k:16s} {r['triplets']:8.3f} {r['knn11']:7.3f} "
            f"{(r['head'] if r['head'] is not None else float('nan')):7.3f} "
            f"{'-' if dist is None else f'{dist:.3f}':>17s}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from exprsim.errors import ExprsimError

    try:
        res = run(args)
    except ExprsimError as exc:  # e.g. ../shared/data missing
        print(f"landmark_quality: {exc}", file=sys.stderr)
        return 2
    print(report(res))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
