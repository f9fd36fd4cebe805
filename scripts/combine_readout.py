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
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True, help="run folder whose hold-out is scored")
    ap.add_argument("--model", required=True, help="an exprnet_ens model (folder or name)")
    ap.add_argument("--modes", nargs="+", default=None, help="pools (default: all)")
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args(argv)

    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling readout_probe.py
    from readout_probe import load_probe, score_readout, write_rows

    from exprsim.models.ensemble import COMBINE_MODES
    from exprsim.training.ferplus import _parts_array

    probe = load_probe(args.run, args.model)
    net, pre = probe.net, probe.embedder.config.preprocess
    parts = {  # per member: (e_k, p_k) of the training and validation faces
        name: [_parts_array(m, images, pre) for m in net.members]
        for name, images in (("train", probe.train.images), ("val", probe.val.images))
    }
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
        row = {"combine": mode, "angle": net.readout_angle}
        rows.append(score_readout(probe, z["train"], z["val"], row, f"combine {mode}"))
    net.combine_mode = shipped
    write_rows(args.json, args.run, args.model, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
