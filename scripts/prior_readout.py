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
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True, help="run folder whose hold-out is scored")
    ap.add_argument("--model", required=True, help="an exprnet_ens model folder")
    ap.add_argument("--betas", type=float, nargs="+", default=[0.0, 0.25, 0.5])
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args(argv)

    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling readout_probe.py
    from readout_probe import load_probe, score_readout, write_rows

    from exprsim.models.ensemble import reweight_distribution
    from exprsim.training.ferplus import _parts_array, class_balance_weights

    probe = load_probe(args.run, args.model)
    net, pre = probe.net, probe.embedder.config.preprocess
    e_tr, p_tr = _parts_array(net, probe.train.images, pre)
    e_va, p_va = _parts_array(net, probe.val.images, pre)
    rows = []
    for beta in args.betas:
        w = torch.from_numpy(class_balance_weights(probe.train.dist, beta))
        with torch.inference_mode():  # on top of the model's own class_weights, if any
            z_tr, z_va = (
                net.readout_from(
                    torch.from_numpy(e), reweight_distribution(torch.from_numpy(p), w)
                ).numpy()
                for e, p in ((e_tr, p_tr), (e_va, p_va))
            )
        row = {"beta": beta, "angle": net.readout_angle}
        rows.append(score_readout(probe, z_tr, z_va, row, f"beta {beta:g}"))
    write_rows(args.json, args.run, args.model, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
