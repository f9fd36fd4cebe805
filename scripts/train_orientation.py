"""Train the upright-or-upside-down check of aligned face crops (``exprsim.faces.orientation``).

A face detector that finds an upside-down face often labels its mouth corners as eyes; the
5-point alignment then yields an upside-down crop that passes every geometric check (its
estimated roll is within +-90 degrees). This script trains a tiny CNN (4 conv layers,
about 15k weights, 32x32 gray input) that tells such crops from upright ones:

* positives: FER+ Training crops (FER2013 framing, as exprsim's aligned crops) rotated by
  +-25 degrees, scaled 0.8-1.2, shifted +-5 px, mirrored half the time;
* negatives: the same crops rotated by 110-250 degrees (upside down, give or take);
* contrast x0.7-1.3 and brightness +-30 levels on both;
* fresh augmentation every epoch; Adam, lr 3e-3, then 1e-3 for the last third; batch 256.

It reports, on PublicTest, the share of upright crops and of crops turned by 180 degrees
that the library's rule flags, and writes the weights with that report as ``.npz`` (NumPy
inference, no torch at run time)::

    python scripts/train_orientation.py --out src/exprsim/faces/weights/orientation.npz
    python scripts/train_orientation.py --evaluate src/exprsim/faces/weights/orientation.npz

PublicTest is only reported, never used to choose anything; the decision threshold is a
constant of the library (``UPSIDE_DOWN_BELOW``).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def _warp(im: np.ndarray, angle: float, scale: float, dx: float, dy: float) -> np.ndarray:
    import cv2

    m = cv2.getRotationMatrix2D((23.5, 23.5), angle, scale)
    m[:, 2] += (dx, dy)
    return cv2.warpAffine(im, m, (48, 48), borderMode=cv2.BORDER_REPLICATE)


def _augment(images: np.ndarray, rng: np.random.Generator, upside_down: bool) -> np.ndarray:
    out = []
    for im in images:
        angle = rng.uniform(110, 250) if upside_down else rng.uniform(-25, 25)
        if rng.random() < 0.5:
            im = im[:, ::-1]
        shift = rng.uniform(-5, 5, 2)
        w = _warp(np.ascontiguousarray(im), angle, rng.uniform(0.8, 1.2), *shift)
        gain, bias = rng.uniform(0.7, 1.3), rng.uniform(-30, 30)  # contrast, brightness
        out.append(np.clip(w.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8))
    return np.stack(out)


def train(args: argparse.Namespace) -> None:
    """Train (see the module docstring) and write ``args.out`` with its report."""
    import torch
    import torch.nn as nn

    from exprsim.data.fer import load_ferplus
    from exprsim.faces.orientation import prepare, torch_network

    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    rng = np.random.default_rng(args.seed)
    train = load_ferplus("Training", drop_duplicates_of="PublicTest")
    net = torch_network(tuple(args.widths))
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    t0 = time.perf_counter()
    for epoch in range(args.epochs):
        if epoch == args.epochs * 2 // 3:
            for g in opt.param_groups:
                g["lr"] = 1e-3
        x = torch.from_numpy(
            np.concatenate(
                [
                    prepare(_augment(train.images, rng, False)),
                    prepare(_augment(train.images, rng, True)),
                ]
            )
        )
        y = torch.cat([torch.ones(len(train)), torch.zeros(len(train))])
        perm = torch.randperm(len(x))
        total = 0.0
        net.train()
        for i in range(0, len(x), 256):
            idx = perm[i : i + 256]
            loss = nn.functional.binary_cross_entropy_with_logits(net(x[idx])[:, 0], y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        print(f"epoch {epoch + 1}: loss {total / len(x):.4f} ({time.perf_counter() - t0:.0f} s)")
    weights = {k: v.detach().numpy().astype(np.float32) for k, v in net.state_dict().items()}
    report = evaluate(weights)
    report["train_seconds"] = round(time.perf_counter() - t0, 1)
    report["epochs"], report["widths"] = args.epochs, list(args.widths)
    print(json.dumps(report, indent=1))
    np.savez(args.out, report=json.dumps(report), **weights)
    print(f"wrote {args.out}")


def evaluate(weights: dict[str, np.ndarray]) -> dict[str, object]:
    """PublicTest figures of the library's rule (:func:`exprsim.faces.orientation.upside_down`)
    and of the plain upright probability, for upright crops and crops turned by 180 degrees."""
    from exprsim.data.fer import load_ferplus
    from exprsim.faces.orientation import UPSIDE_DOWN_MARGIN, upright_probability, upside_down

    test = load_ferplus("PublicTest")
    report: dict[str, object] = {"margin": UPSIDE_DOWN_MARGIN, "n_publictest": len(test)}
    for name, ims in (("upright", test.images), ("rot180", test.images[:, ::-1, ::-1])):
        crops = np.ascontiguousarray(ims)
        report[f"publictest_{name}_flagged"] = round(float(upside_down(crops, weights).mean()), 4)
        p = upright_probability(crops, weights)
        q = np.quantile(p, [0.001, 0.01, 0.05, 0.5, 0.95, 0.99, 0.999])
        report[f"publictest_{name}_quantiles"] = [round(float(v), 4) for v in q]
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="weights file (.npz) to train")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--widths", type=int, nargs=4, default=[8, 16, 32, 32], help="conv channels")
    ap.add_argument("--evaluate", metavar="NPZ", help="only (re)write the report of these weights")
    args = ap.parse_args()
    if args.evaluate:
        with np.load(args.evaluate) as z:
            weights = {k: z[k] for k in z.files if k != "report"}
            old = json.loads(str(z["report"])) if "report" in z.files else {}
        report = {**old, **evaluate(weights)}
        print(json.dumps(report, indent=1))
        np.savez(args.evaluate, report=json.dumps(report), **weights)
    elif args.out:
        train(args)
    else:
        ap.error("give --out (train) or --evaluate")


if __name__ == "__main__":
    main()
