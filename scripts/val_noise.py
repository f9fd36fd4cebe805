"""How much to trust a validation comparison of two models (issue 12).

Two readings on the held-out validation faces of FER+ Training (never PublicTest for the
choice; PublicTest appears only in the twin count, for comparison):

* **triplet-draw noise**: the trainer scores validation vote triplets on *one* draw
  (``batch_triplets(..., rng=default_rng(0))``). This script redraws them with several seeds
  and reports each model's accuracy and the spread of the paired difference;
* **near twins**: the share of validation (and PublicTest) faces whose mean-centred pixels
  have a cosine similarity >= a threshold with some training face.

    .venv/bin/python scripts/val_noise.py --models src/exprsim/models/weights/default \\
        runs/wide78-swa --seeds 10 --json /tmp/val_noise.json

``--rescore RUN...`` instead scores trained run folders' readout angles as the trainer's
readout choice does (``choose_readout``: validation triplets + kNN11 against the training
faces), with ``--seeds`` draws of 3,000 triplets pooled rather than the original one draw.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np


def paired_triplet_spread(
    dist: np.ndarray, embeddings: dict[str, np.ndarray], n: int, seeds: int, threshold: float
) -> dict[str, Any]:
    """Vote-triplet accuracy of each embedding over ``seeds`` triplet draws of ``n``.

    Returns per-model accuracies (one per seed) and, for exactly two models, the paired
    difference (second minus first) per seed with its mean and standard deviation.
    """
    from exprsim.metrics import triplet_accuracy
    from exprsim.training.ferplus_data import batch_triplets

    acc: dict[str, list[float]] = {name: [] for name in embeddings}
    for seed in range(seeds):
        t = batch_triplets(dist, n, threshold, np.random.default_rng(seed))
        if t is None:
            raise ValueError(f"cannot draw {n} clear triplets from {len(dist)} faces")
        for name, z in embeddings.items():
            acc[name].append(float(triplet_accuracy(z, t.i, t.j, t.k, t.odd, t.ttype)["all"]))
    out: dict[str, Any] = {"n": n, "seeds": seeds, "accuracy": acc}
    if len(acc) == 2:
        a, b = (np.asarray(v) for v in acc.values())
        diff = b - a
        out["difference"] = {
            "per_seed": diff.round(4).tolist(),
            "mean": float(diff.mean()),
            "sd": float(diff.std()),
        }
    return out


def rescore_runs(runs: list[str], draws: int, angles: tuple[float, ...]) -> dict[str, Any]:
    """Each run's validation score per readout angle, ``draws`` x 3,000 triplets pooled."""
    import exprsim
    from exprsim.training.ferplus import choose_readout, load_run_config, rescoring_config
    from exprsim.training.ferplus_data import load_data

    out: dict[str, Any] = {}
    data = None
    for run in runs:
        cfg = rescoring_config(load_run_config(run), draws, angles)
        if data is None:  # every run here holds out the same faces (split seed 0)
            data = load_data(cfg)
        rows = choose_readout(exprsim.load_model(run).model, data[0], data[1], cfg)
        out[run] = rows
        best = max(rows, key=lambda r: r["score"])
        print(run, f"best a = {best['angle']:g}: {best['score']:.4f}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", help="model folders or names")
    p.add_argument("--rescore", nargs="+", metavar="RUN", help="trained run folders")
    p.add_argument("--angles", type=float, nargs="+", default=[0.0, 15.0, 30.0, 45.0, 90.0])
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--sizes", type=int, nargs="+", default=[1408, 3000])
    p.add_argument("--threshold", type=float, default=0.2, help="Hellinger gap of a triplet")
    p.add_argument("--twin", type=float, nargs="+", default=[0.99, 0.95, 0.9])
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    if bool(args.models) == bool(args.rescore):
        p.error("give --models or --rescore (exactly one)")
    result = (
        rescore_runs(args.rescore, args.seeds, tuple(args.angles))
        if args.rescore
        else _noise_and_twins(args)
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def _noise_and_twins(args: argparse.Namespace) -> dict[str, Any]:
    import exprsim
    from exprsim.data.fer import load_ferplus
    from exprsim.data.twins import near_twin_similarity
    from exprsim.training.ferplus_config import TrainConfig
    from exprsim.training.ferplus_data import load_data

    train, val = load_data(TrainConfig())  # the default hold-out, every training-part face
    sim_val = near_twin_similarity(val.images, train.images)
    sim_pt = near_twin_similarity(load_ferplus("PublicTest").images, train.images)
    twins = {
        str(th): {
            "validation": float((sim_val >= th).mean()),
            "publictest": float((sim_pt >= th).mean()),
        }
        for th in args.twin
    }
    emb = {m: exprsim.load_model(m).embed_crops(val.images) for m in args.models}
    spread = [
        paired_triplet_spread(val.dist, emb, n, args.seeds, args.threshold) for n in args.sizes
    ]
    result = {"twins": twins, "triplets": spread}
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    sys.exit(main())
