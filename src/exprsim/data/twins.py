"""Near-twin faces: images that are the same photo up to brightness or re-encoding.

FER2013 holds such twins within its Training split (only pixel-identical rows across splits
are dropped by :func:`exprsim.data.fer.load_ferplus`), so a validation face held out of
Training may have a twin among the training faces, which flatters memorisation. On FER+
Training with the default hold-out, 8.1% of validation faces have a training twin at cosine
>= 0.99, against 0.5% of PublicTest faces (``scripts/val_noise.py``).
"""

from __future__ import annotations

import numpy as np


def _unit_rows(images: np.ndarray) -> np.ndarray:
    x = images.reshape(len(images), -1).astype(np.float32)
    x -= x.mean(axis=1, keepdims=True)
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-6)


def near_twin_similarity(query: np.ndarray, base: np.ndarray, chunk: int = 512) -> np.ndarray:
    """``(Q,)`` float32: highest cosine similarity of each query image to any base image.

    Args:
        query: ``(Q, H, W)`` (or ``(Q, ...)``) images.
        base: ``(B, H, W)`` images of the same shape; ``B >= 1``.
        chunk: query rows per matrix product (memory: ``chunk x B`` floats).

    Images are compared after subtracting each one's mean grey level, so a brightness shift
    still counts as a twin; 1.0 means the same picture up to such a shift.
    """
    if len(base) == 0:
        raise ValueError("near_twin_similarity needs at least one base image")
    q, b = _unit_rows(query), _unit_rows(base)
    out = np.empty(len(q), np.float32)
    for s in range(0, len(q), chunk):
        out[s : s + chunk] = (q[s : s + chunk] @ b.T).max(axis=1)
    return out
