"""One comparison table for every expression learner, on exactly the same faces (issue 7).

The CNN embeddings (the shipped default, SGM, the triplet-loss baseline) see 48x48 pixels;
the perceptual VAEs see MediaPipe face meshes of the same crops. The mesh fails on a few
percent of FER2013 crops, so every representation is scored here on the faces whose mesh
was found, with the metrics of :func:`exprsim.evaluate.score_embedding`:

* kNN reference: FER+ Training (PublicTest duplicates dropped), mesh found;
* test: FER+ PublicTest, mesh found; labels: FER+ majority (8 classes);
* triplets: the fixed PublicTest vote triplets of ``exprsim evaluate`` (3000, seed 0) whose
  three faces all have a mesh.

Perceptual-VAE codes use the fallback neutral face (no identities in FER2013), as
``exprsim evaluate --model runs/pvae-m2``. Raw landmarks (375-d) and PCA (30-d, fitted on
the training faces) are the landmark baselines.

    .venv/bin/python scripts/compare_learners.py \
        --cnn default runs/sgm runs/triplet-baseline \
        --pvae runs/pvae-vae runs/pvae-m1 runs/pvae-m2 \
        --json docs/results/compare-learners.json

Needs ../shared/data/fer2013 and the mesh caches in ``runs/pvae`` (written by
``exprsim train --config configs/pvae-*.json``).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from exprsim.data.fer import load_ferplus
from exprsim.data.triplets import validation_triplets
from exprsim.evaluate import score_embedding
from exprsim.models.embedder import load_model
from exprsim.pvae.codes import load_pvae
from exprsim.pvae.features import extract_fer_landmarks

COLUMNS = (
    ("triplets", "triplet_all"),
    ("one", "triplet_one"),
    ("two", "triplet_two"),
    ("three", "triplet_three"),
    ("kNN11 acc", "knn11_acc"),
    ("macro-F1", "knn11_macro_f1"),
    ("AUC200", "auc200_mean"),
    ("NMI", "nmi"),
    ("R@1", "recall@1"),
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cnn", nargs="*", default=["default"], help="embedding models")
    ap.add_argument("--pvae", nargs="*", default=[], help="perceptual-VAE run folders")
    ap.add_argument("--cache", default="runs/pvae", help="mesh cache folder")
    ap.add_argument("--pca-dim", type=int, default=30)
    ap.add_argument("--json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    train = load_ferplus("Training", drop_duplicates_of="PublicTest")
    test = load_ferplus("PublicTest")
    lm_train = extract_fer_landmarks("Training", args.cache)
    lm_test = extract_fer_landmarks("PublicTest", args.cache)
    ok_tr, ok_te = lm_train.ok, lm_test.ok
    trip = validation_triplets(test, n=3000, seed=0)
    keep = ok_te[trip.i] & ok_te[trip.j] & ok_te[trip.k]
    new = np.cumsum(ok_te) - 1
    sub = trip.subset(np.flatnonzero(keep))
    sub = type(sub)(new[sub.i], new[sub.j], new[sub.k], sub.odd, sub.ttype, sub.gap)
    y_tr, y_te = train.majority[ok_tr], test.majority[ok_te]

    reps: list[tuple[str, np.ndarray, np.ndarray]] = []
    for name in args.cnn:
        emb = load_model(name)
        reps.append(
            (name, emb.embed_crops(train.images[ok_tr]), emb.embed_crops(test.images[ok_te]))
        )
    x_tr, x_te = lm_train.features()[ok_tr], lm_test.features()[ok_te]
    reps.append(("raw landmarks", x_tr, x_te))
    from sklearn.decomposition import PCA

    pca = PCA(args.pca_dim, random_state=0).fit(x_tr)
    reps.append((f"PCA-{args.pca_dim} landmarks", pca.transform(x_tr), pca.transform(x_te)))
    for path in args.pvae:
        enc = load_pvae(path)
        reps.append((path, enc.encode_features(x_tr), enc.encode_features(x_te)))

    rows = []
    for name, z_tr, z_te in reps:
        logging.info("scoring %s", name)
        rows.append(score_embedding(name, z_tr, y_tr, z_te, y_te, sub))
    header = "| representation | dim | " + " | ".join(c for c, _ in COLUMNS) + " |"
    print(header)
    print("|" + "---|" * (len(COLUMNS) + 2))
    for r in rows:
        cells = " | ".join(f"{r[k]:.3f}" for _, k in COLUMNS)
        print(f"| {r['name']} | {r['dim']} | {cells} |")
    settings = {
        "train": f"FER+ Training (PublicTest duplicates dropped), mesh found: {int(ok_tr.sum())} "
        f"of {len(ok_tr)} faces",
        "test": f"FER+ PublicTest, mesh found: {int(ok_te.sum())} of {len(ok_te)} faces",
        "triplets": f"{len(sub)} of the {len(trip)} PublicTest vote triplets of exprsim "
        "evaluate (seed 0) with all three meshes found",
    }
    print(json.dumps(settings, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps({"settings": settings, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
