"""How good would an ensemble of independent runs be as a distillation teacher?

Scores the concatenation of several models' 16-d vectors (each unit length, so squared
distances are averaged) on the validation faces (vote triplets + kNN11 against the training
faces, the trainer's readout rule) and on FER+ PublicTest (``exprsim evaluate``'s metrics).
An ensemble is not shippable (N times the cost per crop); it only measures what a student
distilled from it could reach at most.

    python scripts/ensemble_ceiling.py MODEL_DIR MODEL_DIR ... [--json out.json]
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def main(argv: list[str] | None = None) -> int:
    from exprsim.data.fer import load_ferplus
    from exprsim.data.split import holdout_split
    from exprsim.data.triplets import validation_triplets
    from exprsim.evaluate import image_copies, score_embedding
    from exprsim.metrics import knn_predict, triplet_accuracy
    from exprsim.models.embedder import load_model
    from exprsim.training.ferplus_data import batch_triplets

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    train = load_ferplus("Training", drop_duplicates_of="PublicTest")
    test = load_ferplus("PublicTest")
    tr_idx, val_idx = holdout_split(len(train.images), 0.05, 0)
    keep = tr_idx[train.votes[tr_idx].sum(1) >= 7]
    val_trip = batch_triplets(train.dist[val_idx], 1408, 0.2, np.random.default_rng(0))
    test_trip = validation_triplets(test, n=3000, seed=0)
    parts = {}
    for m in args.models:
        emb = load_model(m)
        parts[m] = (emb.embed_crops(train.images), emb.embed_crops(test.images))
    rows = []
    sets = [[m] for m in args.models] + [list(args.models)]
    for names in sets:
        z_tr = np.concatenate([parts[m][0] for m in names], 1) / np.sqrt(len(names))
        z_te = np.concatenate([parts[m][1] for m in names], 1) / np.sqrt(len(names))
        ta = triplet_accuracy(
            z_tr[val_idx], val_trip.i, val_trip.j, val_trip.k, val_trip.odd, val_trip.ttype
        )
        pred = knn_predict(z_tr[keep], train.majority[keep], z_tr[val_idx], k=11, n_classes=8)
        row = score_embedding(
            " + ".join(names),
            z_tr,
            train.majority,
            z_te,
            test.majority,
            test_trip,
            test_copies=image_copies(test.images),
        )
        row["val_triplet_all"] = float(ta["all"])
        row["val_knn11_acc"] = float((pred == train.majority[val_idx]).mean())
        rows.append(row)
        print(
            f"{row['name']}: val {row['val_triplet_all']:.4f} / {row['val_knn11_acc']:.4f}; "
            f"PublicTest triplets {row['triplet_all']:.4f}, kNN11 {row['knn11_acc']:.4f}, "
            f"NMI {row['nmi']:.4f}, AUC200 {row['auc200_mean']:.4f}",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
