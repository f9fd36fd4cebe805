"""Rare emotions weighted in the readout, after training (issue 12; validation only).

The shipped ensemble reads a face out as ``normalise([cos a * sqrt(p), sin a * e])``. Here
``p`` is first re-weighted towards rare emotions, ``p' = normalise(p * w)`` with
``w_c = m_c ** -beta`` (``m_c``: the class's vote mass over the training faces, as
``TrainConfig.class_balance`` weights the loss), for every face alike (training faces as
the kNN reference and validation faces). No retraining. For each ``beta`` the script prints
the validation score the ensemble's readout is chosen with (10 x 3,000 pooled triplet draws
+ kNN11), kNN11 macro-F1, mean AUC200 and the rare classes' AUC200. Nothing here looks at
PublicTest.

    python scripts/prior_readout.py --run runs/robust-swa-v5 --model runs/ens7r \\
        --betas 0 0.1 0.25 0.5 --json runs/prior-readout.json
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
    ap.add_argument("--model", required=True, help="an exprnet_ens model folder")
    ap.add_argument("--betas", type=float, nargs="+", default=[0.0, 0.25, 0.5])
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args(argv)

    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling val_classes.py
    from val_classes import class_scores

    from exprsim.models.embedder import load_model
    from exprsim.models.ensemble import reweight_distribution
    from exprsim.training.ferplus import (
        _parts_array,
        class_balance_weights,
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
    e_tr, p_tr = _parts_array(net, train.images, emb.config.preprocess)
    e_va, p_va = _parts_array(net, val.images, emb.config.preprocess)
    trip = validation_triplets(val.dist, cfg)
    rows = []
    for beta in args.betas:
        w = torch.from_numpy(class_balance_weights(train.dist, beta))
        with torch.inference_mode():  # on top of the model's own class_weights, if any
            z_tr, z_va = (
                net.readout_from(
                    torch.from_numpy(e), reweight_distribution(torch.from_numpy(p), w)
                ).numpy()
                for e, p in ((e_tr, p_tr), (e_va, p_va))
            )
        row: dict[str, object] = {"beta": beta, "angle": net.readout_angle}
        row |= readout_score(z_tr, tr_lab, z_va, va_lab, trip)
        row |= class_scores(z_tr, tr_lab, z_va, va_lab)
        auc = row["auc200_per_class"]
        row["rare_auc200_mean"] = float(np.mean([auc[c] for c in RARE]))  # type: ignore[index]
        rows.append(row)
        print(
            f"beta {beta:g}: score {row['score']:.4f}  triplets {row['val_triplet_all']:.4f}  "
            f"kNN11 {row['knn11_acc']:.4f}  macro-F1 {row['knn11_macro_f1']:.4f}  "
            f"AUC200 {row['auc200_mean']:.4f}  rare AUC200 {row['rare_auc200_mean']:.4f} "
            + " ".join(f"{c} {auc[c]:.3f}" for c in RARE),  # type: ignore[index]
            flush=True,
        )
    if args.json:
        doc = {"run": args.run, "model": args.model, "rows": rows}
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
