"""Embedding throughput and end-to-end speed of the default model.

1. crops/s of ``Embedder.embed_crops`` at batch 64 (48x48 gray input), beside the same
   network without BatchNorm folding (``load_model(fuse=False)``) and the `fer` package's
   FER2013 CNN (our torch port, 64x64 input) measured in the same run;
2. end to end on 640x480 JPEG photos (decode + detect + align + quality + embed), faces/s,
   beside the same pipeline with the fer CNN as the embedder; with the default detector
   (``mediapipe``: two ranges + tiles) and with the one-pass ``mediapipe-fast`` preset.

Usage: ``python benchmarks/embed.py [--threads 2] [--seconds 5] [--rounds 5] [--json out.json]``
(each contender runs ``--seconds`` in total, split into ``--rounds`` interleaved rounds; the
median round is reported)
(the `fer` package itself needs TensorFlow, which is not installed: its CNN is run
through exprsim.baselines.fer_cnn instead).
"""

from __future__ import annotations

import argparse
import io
import json
import time

import numpy as np


def _rate(fn, n_items: int, seconds: float) -> float:
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        done += n_items
    return done / (time.perf_counter() - t0)


def _rates(fns: dict, seconds: float, rounds: int) -> dict[str, float]:
    """Median items/s of each ``name -> (fn, n_items)`` over ``rounds`` interleaved rounds.

    Interleaving puts every contender under the same machine conditions (the shared 2-core
    VM drifts by tens of percent over a minute); the median drops outlier rounds.
    """
    for fn, _ in fns.values():
        fn()  # warm-up
    per: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, (fn, n) in fns.items():
            per[name].append(_rate(fn, n, seconds / rounds))
    return {name: float(np.median(v)) for name, v in per.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=5.0, help="seconds per contender")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median)")
    ap.add_argument("--model", default="default", help="shipped name or checkpoint folder")
    ap.add_argument("--json")
    args = ap.parse_args()

    import cv2
    import torch
    from PIL import Image

    import exprsim
    from exprsim.baselines.fer_cnn import load_fer_cnn
    from exprsim.faces.pipeline import analyze_image
    from exprsim.io import load_image
    from exprsim.samples import sample_images

    torch.set_num_threads(args.threads)
    embedder = exprsim.load_model(args.model)
    # the same network without BatchNorm folding (``load_model(fuse=False)``), for the ratio
    unfused = exprsim.load_model(args.model, fuse=False)
    fer = load_fer_cnn()
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, size=(64, 48, 48), dtype=np.uint8)
    res: dict[str, float] = {}
    res.update(
        _rates(
            {
                "embed_crops_per_s": (lambda: embedder.embed_crops(crops), 64),
                "embed_crops_unfused_per_s": (lambda: unfused.embed_crops(crops), 64),
                "fer_cnn_crops_per_s": (lambda: fer.predict(crops), 64),
            },
            args.seconds,
            args.rounds,
        )
    )

    # 640x480 JPEGs made from the bundled photos (face somewhere in the frame)
    jpegs = []
    for path in sample_images():
        im = load_image(path)
        h, w = im.shape[:2]
        s = 440 / max(h, w)
        small = cv2.resize(im, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
        canvas = np.full((480, 640, 3), 90, np.uint8)
        canvas[: small.shape[0], : small.shape[1]] = small
        buf = io.BytesIO()
        Image.fromarray(canvas).save(buf, "JPEG", quality=90)
        jpegs.append(buf.getvalue())

    def pipeline(embed, detector: str = "mediapipe") -> int:
        n = 0
        for data in jpegs:
            faces = analyze_image(load_image(data), detector=detector)
            if faces:
                embed(np.stack([f.crop for f in faces]))
                n += len(faces)
        return n

    def aligned(crops: np.ndarray) -> np.ndarray:  # as embed_images does: no re-framing
        return embedder.embed_crops(crops, reframe=False)

    n_faces = pipeline(aligned)
    # the one-pass detector preset (short range, no tiles): what it costs in found faces
    n_fast = pipeline(aligned, "mediapipe-fast")
    fast = "mediapipe-fast"
    res.update(
        _rates(
            {
                "e2e_faces_per_s": (lambda: pipeline(aligned), n_faces),
                "e2e_fer_cnn_faces_per_s": (lambda: pipeline(fer.predict), n_faces),
                "e2e_fast_faces_per_s": (lambda: pipeline(aligned, fast), n_fast),
                "e2e_fast_fer_cnn_faces_per_s": (lambda: pipeline(fer.predict, fast), n_fast),
            },
            args.seconds,
            args.rounds,
        )
    )
    res["faces_per_round"] = n_faces
    res["faces_per_round_fast"] = n_fast
    res["threads"] = args.threads
    for k, v in res.items():
        print(f"{k:28s} {v:10.1f}")
    print(
        f"ratio embed_crops / fer CNN: {res['embed_crops_per_s'] / res['fer_cnn_crops_per_s']:.2f}"
    )
    print(
        "ratio embed_crops fused / unfused: "
        f"{res['embed_crops_per_s'] / res['embed_crops_unfused_per_s']:.2f}"
    )
    print(
        f"ratio e2e / e2e with fer CNN: {res['e2e_faces_per_s'] / res['e2e_fer_cnn_faces_per_s']:.2f}"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
