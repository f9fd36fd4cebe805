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

With one beta and ``--write OUT``, the model folder is also written to ``OUT`` with those
weights in its ``config.json`` (``class_weights``, on top of any it had) and ``--version``:
v8 is ``--betas 0.25 --write runs/ens8 --version 8`` on v7's ``runs/ens7r``, then
``exprsim tag calibrate --model runs/ens8 --save``.
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
    ap.add_argument("--write", metavar="OUT", help="with one beta: write the model with it")
    ap.add_argument("--version", help="with --write: the written model's version")
    args = ap.parse_args(argv)
    if args.write is not None and len(args.betas) != 1:
        ap.error("--write takes exactly one --betas value")
    if args.version is not None and args.write is None:
        ap.error("--version only goes with --write")
    if args.write is not None and (
        Path(args.write).exists()
        or Path(args.write).with_name(Path(args.write).name + ".partial").exists()
    ):
        ap.error(f"--write {args.write}: it (or its .partial) already exists; give a new folder")
    from exprsim.errors import ExprsimError

    try:
        return _score(args)
    except ExprsimError as exc:  # a run or model folder that is not one: one line, exit 2
        print(f"{ap.prog}: error: {exc}", file=sys.stderr)
        return 2


def _score(args: argparse.Namespace) -> int:
    """Score every ``--betas`` value on the run's hold-out (and ``--write`` the model)."""
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
    if args.write is not None:
        w = class_balance_weights(probe.train.dist, args.betas[0])
        write_model(args.model, args.write, w, args.version)
    return 0


def write_model(src: str, out: str, weights: object, version: str | None) -> None:
    """Copy the model folder ``src`` to ``out`` with ``weights`` (8 floats) multiplied into
    its readout's ``class_weights`` (rounded to 6 places, as config.json keeps them). The
    tag threshold is left unset: the space changed, calibrate it again
    (``exprsim tag calibrate --model OUT --save``)."""
    import json
    import shutil

    import numpy as np

    from exprsim.models.embedder import SHIPPED, _weights_dir

    dest = Path(out)
    tmp = dest.with_name(f"{dest.name}.partial")
    if dest.exists() or tmp.exists():
        raise SystemExit(f"prior_readout.py: {dest} or {tmp} already exists; give a new folder")
    shutil.copytree(_weights_dir(src) if src in SHIPPED else Path(src), tmp)
    cfg = json.loads((tmp / "config.json").read_text())
    kw = cfg["model_kwargs"]
    w = np.asarray(weights, np.float64) * np.asarray(kw.get("class_weights") or 1.0)
    kw["class_weights"] = [round(float(v), 6) for v in w]
    cfg["tag_threshold"] = None
    if version is not None:
        cfg["version"] = version
    (tmp / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    tmp.rename(dest)
    print(f"wrote {dest} (class_weights {kw['class_weights']}); now calibrate its tag threshold:")
    print(f"exprsim tag calibrate --model {dest} --save")


if __name__ == "__main__":
    raise SystemExit(main())
