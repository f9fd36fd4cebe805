"""Would a linear map on the shipped 16-d output, fitted afterwards, help? (issue 12)

The shipped vector is ``z = [cos(a) sqrt(p), sin(a) e]``. This fits a 16x16 matrix ``W``
(``z -> normalise(z W)``, started at the identity, Adam on random pairs) so that squared
distances match the pairs' vote distances (``2 H^2`` of the vote distributions, the target
the training's relational term uses), then scores the validation faces as the trainer's
readout choice does (vote triplets among the validation faces + kNN11 against the training
faces). Two ways, both without PublicTest:

* fitted on the training faces (the ones the network was trained on);
* 2-fold cross-fitted on the validation faces (fit on one half, score the other, both ways),
  with three strengths of a pull towards the identity.

    .venv/bin/python scripts/posthoc_metric.py --json docs/results/posthoc-metric.json
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

import numpy as np


def fit_map(z: np.ndarray, dist: np.ndarray, steps: int, pull: float, seed: int) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(seed)
    zt = torch.from_numpy(z).float()
    root = torch.from_numpy(np.sqrt(dist)).float()
    eye = torch.eye(z.shape[1])
    w = eye.clone().requires_grad_(True)
    opt = torch.optim.Adam([w], lr=0.05)
    for _ in range(steps):
        i = torch.randint(0, len(zt), (4096,), generator=gen)
        j = torch.randint(0, len(zt), (4096,), generator=gen)
        d2 = (F.normalize(zt[i] @ w, dim=1) - F.normalize(zt[j] @ w, dim=1)).pow(2).sum(1)
        h2 = (root[i] - root[j]).pow(2).sum(1)  # 2 x squared Hellinger distance
        loss = (d2 - h2).pow(2).mean() + pull * (w - eye).pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return w.detach().numpy()


def apply_map(z: np.ndarray, w: np.ndarray) -> np.ndarray:
    v = z @ w
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--config", default="configs/default-swa30.json")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    from exprsim.config import from_dict
    from exprsim.metrics import knn_predict, triplet_accuracy
    from exprsim.models.embedder import load_model
    from exprsim.training.ferplus import _parts_array
    from exprsim.training.ferplus_config import TrainConfig
    from exprsim.training.ferplus_data import batch_triplets, load_data

    with open(args.config) as fh:
        cfg = from_dict(TrainConfig, json.load(fh))
    train, val = load_data(cfg)
    net = load_model().model
    angle = math.radians(float(net.readout_angle))

    def readout(e: np.ndarray, p: np.ndarray) -> np.ndarray:
        v = np.concatenate([math.cos(angle) * np.sqrt(np.clip(p, 0, None)), math.sin(angle) * e], 1)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    z_tr = readout(*_parts_array(net, train.images, cfg.preprocess))
    z_va = readout(*_parts_array(net, val.images, cfg.preprocess))

    def score(ztr: np.ndarray, zva: np.ndarray, idx: np.ndarray) -> dict[str, float]:
        d = val.dist[idx]
        trip = batch_triplets(d, len(idx), cfg.triplet_threshold, np.random.default_rng(0))
        ta = triplet_accuracy(zva, trip.i, trip.j, trip.k, trip.odd, trip.ttype)["all"]
        pred = knn_predict(ztr, train.dist.argmax(1), zva, k=11, n_classes=8)
        knn = float((pred == d.argmax(1)).mean())
        return {
            "triplets": round(float(ta), 4),
            "knn11": round(knn, 4),
            "score": round(ta + knn, 4),
        }

    everyone = np.arange(len(z_va))
    res: dict[str, Any] = {"shipped": score(z_tr, z_va, everyone), "fit_on_training": {}}
    for pull in (0.0, 1e-3):
        w = fit_map(z_tr, train.dist, 1500, pull, 0)
        res["fit_on_training"][str(pull)] = score(apply_map(z_tr, w), apply_map(z_va, w), everyone)
    perm = np.random.default_rng(1).permutation(len(z_va))
    halves = (perm[: len(perm) // 2], perm[len(perm) // 2 :])
    res["crossfit_on_validation"] = {}
    for pull in (0.0, 1e-3, 1e-2):
        rows = []
        for fit_idx, eval_idx in (halves, halves[::-1]):
            w = fit_map(z_va[fit_idx], val.dist[fit_idx], 800, pull, 0)
            rows.append(
                {
                    "shipped": score(z_tr, z_va[eval_idx], eval_idx),
                    "mapped": score(apply_map(z_tr, w), apply_map(z_va[eval_idx], w), eval_idx),
                }
            )
        res["crossfit_on_validation"][str(pull)] = rows
    print(json.dumps(res, indent=1))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
