"""Landmark training data of the perceptual VAE: FER+ face-mesh features and toy features.

Shared by the trainer (:mod:`exprsim.training.pvae`) and the evaluation
(:mod:`exprsim.pvae.evaluate`), with the exprsim hold-out split
(:func:`exprsim.data.split.holdout_split`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from exprsim.equality import array_equality


@array_equality
@dataclass(frozen=True)
class LandmarkData:
    """Training/validation features and their vote labels.

    Attributes:
        x_train, x_val: ``(N, D)`` float32 features.
        dist_train, dist_val: ``(N, 8)`` vote distributions.
        maj_train, maj_val: ``(N,)`` int64 majority labels.
    """

    x_train: np.ndarray
    x_val: np.ndarray
    dist_train: np.ndarray
    dist_val: np.ndarray
    maj_train: np.ndarray
    maj_val: np.ndarray


def synthetic_landmarks(n: int, dim: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Toy landmark features whose vote distributions follow a hidden expression.

    Returns:
        ``(n, dim)`` float32 features and ``(n, 8)`` float32 vote distributions.
    """
    rng = np.random.default_rng(seed)
    expr = rng.normal(size=(n, 3))
    x = expr @ rng.normal(size=(3, dim)) * 0.05 + rng.normal(size=(n, dim)) * 0.005
    logits = expr @ rng.normal(size=(3, 8)) * 2.0
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return x.astype(np.float32), (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def fer_training_landmarks(
    cache_dir: str | Path,
    data_dir: str | None,
    val_fraction: float,
    seed: int,
    max_train: int | None = None,
    progress: bool = True,
) -> tuple[LandmarkData, dict[str, float | str]]:
    """FER+ Training features split with :func:`exprsim.data.split.holdout_split`: the
    first ``max_train`` faces when set (only those are meshed, unless the whole split's
    meshes are cached), ``progress`` for the mesh extraction's bar.

    Returns:
        The data (mesh failures dropped) and ``{"faces", "mesh_found", "success_rate",
        "landmark_cache"}``, the last the absolute folder of the cached meshes (the run's
        ``result.json`` records it: a relative ``cache_dir`` is relative to the working
        folder, which the run does not record otherwise).
    """
    from exprsim.data.fer import load_ferplus
    from exprsim.data.split import holdout_split
    from exprsim.pvae.features import extract_fer_landmarks

    lm = extract_fer_landmarks(
        "Training", cache_dir, data_dir, progress=progress, limit=max_train or None
    )
    split = load_ferplus("Training", data_dir, drop_duplicates_of="PublicTest")
    x, dist, maj, ok = lm.features(), split.dist, split.majority, lm.ok
    if max_train:
        x, dist, maj, ok = x[:max_train], dist[:max_train], maj[:max_train], ok[:max_train]
    tr, va = holdout_split(len(x), val_fraction, seed)
    tr, va = tr[ok[tr]], va[ok[va]]
    data = LandmarkData(x[tr], x[va], dist[tr], dist[va], maj[tr], maj[va])
    stats: dict[str, float | str] = {
        "faces": len(ok),
        "mesh_found": int(ok.sum()),
        "success_rate": float(ok.mean()),
        "landmark_cache": os.path.abspath(cache_dir),
    }
    return data, stats


__all__ = ["LandmarkData", "fer_training_landmarks", "synthetic_landmarks"]
