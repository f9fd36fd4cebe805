"""Is an aligned crop upright? A tiny CNN that catches faces aligned upside down.

A detector that finds an upside-down face often labels its mouth corners as eyes; the
5-point alignment then makes an upside-down crop whose estimated roll is within +-90
degrees, so no geometric check notices it, and its embedding describes no expression.

:func:`upright_probability` reads a crop the way the expression model does (gray, 48x48
FER2013 framing), shrinks it to 32x32, standardises it, and runs a 4-layer CNN (about 60k
weights; NumPy only) trained on FER+ Training crops, upright against turned by 110-250
degrees (``scripts/train_orientation.py``: 30 epochs, 632 s on 2 cores with only file edits beside it, the
project's 1,408 validation faces held out; weights and training report in
``weights/orientation.npz``). :func:`upside_down` compares a crop with itself turned by 180
degrees, looking at the turn only when the crop is not surely upright (about 0.65 ms for an
upright face); :func:`exprsim.faces.pipeline.analyze_image` looks for a face it flags again
in the image turned by 180 degrees, and rejects it (``"upside_down"``) when that fails.

The margin (:data:`UPSIDE_DOWN_MARGIN`, 0: the turn looks more upright than the crop) was
chosen on the validation faces by a rule fixed before (the script's docstring): it flags
0.85% of the upright validation crops and 93.8% of those turned by 110-250 degrees. On FER+
PublicTest (3,569 crops, not aligned for roll, so some lie nearly sideways): 0.73% of the
upright crops, 99.3% of those turned by 180 degrees. The 9 bundled photos turned by 120,
150, 180, 210 and 240 degrees gave 27 accepted crops before, 25 of them faces upside down;
now 39, 38 upright faces (checked by eye) and the one non-face accepted before. Upright
photos are not touched (golden crops unchanged). A smaller network (8/16/32/32 channels,
half the time) left two of those faces upside down.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

#: the network's input side
INPUT_SIZE = 32
#: a crop counts as upside down when the log-odds that it is upright are this much higher
#: for the crop turned by 180 degrees than for the crop itself (:func:`upside_down`);
#: chosen on the validation faces (``scripts/train_orientation.py``)
UPSIDE_DOWN_MARGIN = 0.0
#: a crop whose own log-odds of "upright" exceed this is upright without looking at its
#: 180-degree turn (most faces: it halves the cost); 6 is a probability of 0.9975
UPRIGHT_SURE = 6.0
WEIGHTS = Path(__file__).resolve().parent / "weights" / "orientation.npz"
#: (state-dict prefix of each conv layer), then the final linear layer
_CONVS = ("0", "3", "6", "9")
_LINEAR = "13"


def prepare(images: np.ndarray) -> np.ndarray:
    """``(N, S, S)`` gray or ``(N, S, S, 3)`` RGB uint8 crops -> ``(N, 1, 32, 32)`` float32
    (``ValueError`` for anything else: a float image or one crop without its batch axis
    would otherwise be misread).

    Crops are turned gray, resized to 48x48 (the expression model's input) then to 32x32
    (area interpolation), and standardised per image: ``(x - mean) / (std + 1)``.
    """
    import cv2

    ims = np.asarray(images)
    square = ims.ndim in (3, 4) and ims.shape[1] == ims.shape[2] > 0
    if ims.dtype != np.uint8 or not square or (ims.ndim == 4 and ims.shape[3] != 3):
        raise ValueError(
            "crops must be uint8 arrays (N, S, S) gray or (N, S, S, 3) RGB, "
            f"got {ims.dtype} {ims.shape}"
        )
    if ims.ndim == 4:
        ims = np.stack([cv2.cvtColor(np.ascontiguousarray(im), cv2.COLOR_RGB2GRAY) for im in ims])
    out = np.empty((len(ims), 1, INPUT_SIZE, INPUT_SIZE), np.float32)
    for i, im in enumerate(ims):
        g: np.ndarray = np.ascontiguousarray(im, np.uint8)
        if g.shape != (48, 48):
            g = np.asarray(cv2.resize(g, (48, 48), interpolation=cv2.INTER_AREA))
        small = cv2.resize(g, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)
        x = small.astype(np.float32) - float(small.mean())
        out[i, 0] = x / (x.std() + 1.0)
    return out


#: channels of the four conv layers
WIDTHS = (16, 32, 64, 64)


def torch_network(widths: tuple[int, int, int, int] = WIDTHS) -> Any:
    """The architecture as a ``torch.nn.Sequential`` (training, and the test's reference):
    four 3x3 conv + ReLU layers, a 2x2 max-pool after the first three, global average
    pooling, one linear output (the logit of "upright")."""
    import torch.nn as nn

    a, b, c, d = widths
    return nn.Sequential(
        nn.Conv2d(1, a, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(a, b, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(b, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c, d, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(d, 1),
    )  # fmt: skip


@lru_cache(maxsize=2)
def load_weights(path: str | None = None) -> dict[str, np.ndarray]:
    """The shipped weights: state-dict names -> arrays (the file's training ``report`` is
    left out)."""
    with np.load(path or WEIGHTS) as z:
        return {k: z[k] for k in z.files if k != "report"}


def _conv3x3_relu(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, H, W, C)`` -> ``(N, H, W, K)``: 3x3 convolution (``w``: ``(K, C, 3, 3)``, as
    torch stores it), padding 1, then ReLU; one matrix product over the 3x3 patches."""
    n, h, wd, c = x.shape
    pad = np.zeros((n, h + 2, wd + 2, c), x.dtype)
    pad[:, 1:-1, 1:-1] = x
    # patches as (N, H, W, 3 * 3 * C), rows then columns then channels; w in that order
    cols = np.concatenate([pad[:, i : i + h, j : j + wd] for i in range(3) for j in range(3)], -1)
    y = _matmul(cols.reshape(n * h * wd, 9 * c), w.transpose(2, 3, 1, 0).reshape(9 * c, len(w)))
    y += b
    return np.maximum(y, 0.0, out=y).reshape(n, h, wd, len(w))


def _maxpool2(x: np.ndarray) -> np.ndarray:
    """``(N, H, W, C)`` -> ``(N, H / 2, W / 2, C)``: the maximum of each 2x2 block."""
    return np.maximum(
        np.maximum(x[:, 0::2, 0::2], x[:, 0::2, 1::2]),
        np.maximum(x[:, 1::2, 0::2], x[:, 1::2, 1::2]),
    )


#: OpenBLAS runs a product of ``m * n * k`` below this on the calling thread (its
#: ``GEMM_MULTITHREAD_THRESHOLD`` x 65536); :func:`_matmul` keeps every product under it
_SINGLE_THREAD_GEMM = 4 * 65536


def block_rows(k: int, n: int) -> int:
    """Rows of an ``(rows, k) @ (k, n)`` product that BLAS runs on the calling thread."""
    return max(1, (_SINGLE_THREAD_GEMM - 1) // max(1, k * n))


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` in row blocks small enough for BLAS to run each on the calling thread.

    A threaded product would wake BLAS worker threads that keep spinning after it: beside
    the detector and the embedding model on two cores, that cost the face pipeline a
    quarter of its throughput (70 against 93 faces/s). Limiting BLAS threads does not
    help here, as OpenBLAS ignores a limit set from another thread than the main one, and
    the face stages run in worker threads.
    """
    m, k = a.shape
    n = b.shape[1]
    rows = block_rows(k, n)
    if m <= rows:
        return a @ b
    out = np.empty((m, n), np.result_type(a, b))
    for i in range(0, m, rows):
        np.matmul(a[i : i + rows], b, out=out[i : i + rows])
    return out


def _logits(x: np.ndarray, p: dict[str, np.ndarray]) -> np.ndarray:
    """``(N, 1, 32, 32)`` prepared crops -> ``(N,)`` float64 logits of "upright"."""
    x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))  # channels last
    for i, name in enumerate(_CONVS):
        x = _conv3x3_relu(x, p[f"{name}.weight"], p[f"{name}.bias"])
        if i < len(_CONVS) - 1:
            x = _maxpool2(x)
    feat = x.mean(axis=(1, 2))
    return (feat @ p[f"{_LINEAR}.weight"][0] + p[f"{_LINEAR}.bias"][0]).astype(np.float64)


def upright_probability(
    crops: np.ndarray, weights: dict[str, np.ndarray] | None = None
) -> np.ndarray:
    """``(N,)`` probability that each aligned crop is upright (see the module docstring).

    Args:
        crops: ``(N, S, S, 3)`` RGB or ``(N, S, S)`` gray uint8 aligned crops (any ``S``;
            exprsim's are 112).
        weights: other weights (default: the shipped ones).
    """
    if len(crops) == 0:
        return np.zeros(0, np.float32)
    logit = _logits(prepare(crops), weights or load_weights())
    return (1.0 / (1.0 + np.exp(-logit))).astype(np.float32)


def upside_down_evidence(
    crops: np.ndarray, weights: dict[str, np.ndarray] | None = None
) -> np.ndarray:
    """``(N,)`` log-odds of "upright" for each crop turned by 180 degrees minus those of the
    crop itself: large and positive for a crop aligned upside down, large and negative for
    an upright one.

    Comparing the two orientations, rather than thresholding one probability, keeps an
    unusual upright face (low confidence both ways) from counting as upside down, and
    catches a turned crop the network is only half sure of (a real one had 0.61 upright,
    0.99 once turned).
    """
    if len(crops) == 0:
        return np.zeros(0, np.float64)
    x = prepare(crops)
    logits = _logits(np.concatenate([x, x[:, :, ::-1, ::-1]]), weights or load_weights())
    return logits[len(x) :] - logits[: len(x)]


def upside_down(
    crops: np.ndarray,
    weights: dict[str, np.ndarray] | None = None,
    margin: float = UPSIDE_DOWN_MARGIN,
) -> np.ndarray:
    """``(N,)`` bool: the crop looks upside down: its own log-odds of "upright" are at most
    :data:`UPRIGHT_SURE`, and :func:`upside_down_evidence` is above ``margin`` (the turn is
    looked at only for the unsure crops)."""
    out = np.zeros(len(crops), bool)
    if len(crops) == 0:
        return out
    p = weights or load_weights()
    x = prepare(crops)
    own = _logits(x, p)
    unsure = np.flatnonzero(own <= UPRIGHT_SURE)
    if len(unsure):
        turned = _logits(np.ascontiguousarray(x[unsure][:, :, ::-1, ::-1]), p)
        out[unsure] = turned - own[unsure] > margin
    return out


__all__ = [
    "INPUT_SIZE",
    "UPSIDE_DOWN_MARGIN",
    "prepare",
    "torch_network",
    "upright_probability",
    "upside_down",
    "upside_down_evidence",
]
