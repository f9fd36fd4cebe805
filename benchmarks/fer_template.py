"""Measure the FER2013 framing: mean 5-point landmark positions on FER2013 crops.

Runs the MediaPipe face-mesh landmarker (:class:`exprsim.faces.landmarks.MeshLandmarker`,
the same one the detectors use) on random FER2013 Training crops, each upscaled from 48 to
``--side`` pixels (bicubic) and converted gray -> RGB, with the whole crop as the face box.
Prints the mesh success rate and the mean landmark positions normalised to ``[0, 1]`` of
the crop side (raw, and mirror-symmetrised as hard-coded in
``exprsim.faces.align.FER2013_TEMPLATE``).

Usage::

    .venv/bin/python benchmarks/fer_template.py --n 5000 --seed 0 [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def symmetrise(t: np.ndarray) -> np.ndarray:
    """Average a (5, 2) normalised template with its left-right mirror image."""
    mirror = t[[1, 0, 2, 4, 3]].copy()
    mirror[:, 0] = 1.0 - mirror[:, 0]
    return (t + mirror) / 2.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=5000, help="number of Training crops")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--side", type=int, default=192, help="upscaled crop side in pixels")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)

    import cv2

    from exprsim.data.fer import load_ferplus
    from exprsim.faces.landmarks import MeshLandmarker

    split = load_ferplus("Training")
    rng = np.random.default_rng(args.seed)
    idx = rng.choice(len(split), size=min(args.n, len(split)), replace=False)
    lmk = MeshLandmarker()
    side = args.side
    box = np.array([0.0, 0.0, side, side])
    found = []
    t0 = time.perf_counter()
    for i in idx:
        up = cv2.resize(split.images[i], (side, side), interpolation=cv2.INTER_CUBIC)
        rgb = np.ascontiguousarray(np.repeat(up[:, :, None], 3, axis=2))
        five = lmk.landmarks(rgb, box)
        if five is not None:
            found.append((five.astype(np.float64) + 0.5) / side)  # pixel centres -> [0, 1]
    secs = time.perf_counter() - t0
    pts = np.array(found)
    mean = pts.mean(axis=0)
    sym = symmetrise(mean)
    eye_dist = float(np.linalg.norm(sym[1] - sym[0]))
    result = {
        "n": len(idx),
        "success": len(found),
        "success_rate": len(found) / len(idx),
        "mean": mean.round(4).tolist(),
        "std": pts.std(axis=0).round(4).tolist(),
        "symmetrised": sym.round(4).tolist(),
        "eye_distance": round(eye_dist, 4),
        "seconds": round(secs, 1),
    }
    print(
        f"FER2013 Training crops: {len(found)}/{len(idx)} meshed ({100 * result['success_rate']:.1f}%) in {secs:.0f} s"
    )
    names = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
    print(
        f"{'point':<12} {'mean x':>7} {'mean y':>7} {'std x':>6} {'std y':>6} {'sym x':>7} {'sym y':>7}"
    )
    for k, name in enumerate(names):
        m, s, y = mean[k], pts.std(axis=0)[k], sym[k]
        print(f"{name:<12} {m[0]:7.4f} {m[1]:7.4f} {s[0]:6.3f} {s[1]:6.3f} {y[0]:7.4f} {y[1]:7.4f}")
    print(f"eye distance (symmetrised): {eye_dist:.4f} of the crop side")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
