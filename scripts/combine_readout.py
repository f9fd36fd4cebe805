"""Pooling the members' emotion distributions: mean, Hellinger barycentre, geometric (issue 12).

The shipped ensemble pools its members' distributions as ``p = mean_k p_k`` before the class
re-weighting and ``sqrt``. This script reads the same members out with each pool of
:data:`exprsim.models.ensemble.COMBINE_MODES` (no retraining; the model's rotations, readout
angle and class weights unchanged) and prints, on a run's validation faces, the score the
ensemble's readout is chosen with (10 x 3,000 pooled triplet draws + kNN11), kNN11 macro-F1,
mean AUC200 and the rare classes' AUC200. Nothing here looks at PublicTest.

    python scripts/combine_readout.py --run runs/robust-swa-v5 --model default \\
        --json runs/combine-readout.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

RARE = ("disgust", "fear", "contempt")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True, help="run folder whose hold-out is scored")
    ap.add_argument("--model", required=True, help="an exprnet_ens model (folder or name)")
    ap.add_argument("--modes", nargs="+", default=None, help="pools (default: all)")
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args(argv)

    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling val_classes.py
    from val_classes import class_scores

    from exprsim.models.embedder import load_model
    from exprsim.models.ensemble import COMBINE_MODES
    from exprsim.training.ferplus import (
        _parts_array,
        load_data,
        load_run_config,
        readout_score,
        rescoring_config,
        validation_triplets,
    )

    emb = load_model(args.model, fuse=False)
    net = emb.model
    cfg = rescoring_config(load_run_config(args.run), 10, [net.readout_angle])
    train, val = load_data(cfg)
    tr_lab, va_lab = train.dist.argmax(1), val.dist.argmax(1)
    parts = {  # per member: (e_k, p_k) of the training and validation faces
        name: [_parts_array(m, images, emb.config.preprocess) for m in net.members]
        for name, images in (("train", train.images), ("val", val.images))
    }
    trip = validation_triplets(val.dist, cfg)
    shipped = net.combine_mode
    rows = []
    for mode in args.modes or COMBINE_MODES:
        net.combine_mode = mode
        z = {}
        with torch.inference_mode():
            for name, members in parts.items():
                es = [torch.from_numpy(e) for e, _ in members]
                ps = [torch.from_numpy(p) for _, p in members]
                z[name] = net.readout_from(*net.combine(es, ps)).numpy()
        row: dict[str, object] = {"combine": mode, "angle": net.readout_angle}
        row |= readout_score(z["train"], tr_lab, z["val"], va_lab, trip)
        row |= class_scores(z["train"], tr_lab, z["val"], va_lab)
        auc = row["auc200_per_class"]
        row["rare_auc200_mean"] = float(np.mean([auc[c] for c in RARE]))  # type: ignore[index]
        rows.append(row)
        print(
            f"{mode:<10} score {row['score']:.4f}  triplets {row['val_triplet_all']:.4f}  "
            f"kNN11 {row['knn11_acc']:.4f}  macro-F1 {row['knn11_macro_f1']:.4f}  "
            f"AUC200 {row['auc200_mean']:.4f}  rare AUC200 {row['rare_auc200_mean']:.4f} "
            + " ".join(f"{c} {auc[c]:.3f}" for c in RARE),  # type: ignore[index]
            flush=True,
        )
    net.combine_mode = shipped
    if args.json:
        doc = {"run": args.run, "model": args.model, "rows": rows}
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
