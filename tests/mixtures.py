"""Synthetic embeddings with known sub-classes, shared by the SGM and sub-expression tests."""

from __future__ import annotations

import numpy as np


def gaussian_subclasses(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class 0: three separated isotropic blobs; class 1: one blob.

    Returns:
        ``(emb, labels, truth)``: ``(180, 3)`` points, their class (0/1) and their blob (0-3),
        shuffled.
    """
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0, 0], [4, 0, 0], [0, 4, 0], [10, 10, 10]], float)
    sizes = [60, 40, 30, 50]
    truth = np.repeat(np.arange(4), sizes)
    emb = centres[truth] + rng.normal(0, 0.3, size=(len(truth), 3))
    labels = np.where(truth < 3, 0, 1)
    perm = rng.permutation(len(truth))
    return emb[perm], labels[perm], truth[perm]
