"""Seeded hold-out splits shared by training and the applications.

Training holds out a seeded fraction of FER+ Training for validation; the applications
(:mod:`exprsim.apps.classify`, :mod:`exprsim.apps.tag`) choose K and calibrate thresholds
on exactly those faces, so both must draw the same split: this module is the one place it
is drawn.
"""

from __future__ import annotations

import numpy as np


def holdout_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train_idx, val_idx)``: a seeded ``fraction`` of ``range(n)`` held out, both sorted.

    Args:
        n: number of items.
        fraction: share held out (``round(fraction * n)`` items).
        seed: seed of the ``numpy.random.default_rng`` permutation.

    Returns:
        ``(n - m,)`` and ``(m,)`` int64 indices, ascending, disjoint, covering ``range(n)``.

    With the default training config (``val_fraction=0.05``, ``seed=0``) on FER+ Training
    (PublicTest duplicates dropped) this gives the faces the default model never trained on;
    :mod:`exprsim.apps` chooses K and calibrates thresholds on them.
    """
    perm = np.random.default_rng(seed).permutation(n)
    n_val = round(fraction * n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])
