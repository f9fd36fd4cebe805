"""Satisfied-triplet share (paper, eq. 12) against a naive loop; the SVM helper."""

from __future__ import annotations

import numpy as np
import pytest

from exprsim.pvae.evaluate import linear_svm_accuracy, satisfied_share


def test_satisfied_share_matches_loop() -> None:
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(30, 4))
    i, j, k = (rng.integers(0, 30, 40) for _ in range(3))
    odd = rng.integers(0, 3, 40)
    sat = []
    for t in range(40):
        faces = [i[t], j[t], k[t]]
        neg = faces[odd[t]]
        a, b = (f for p, f in enumerate(faces) if p != odd[t])
        for ref, pos in ((a, b), (b, a)):
            d_pos = np.sqrt(((emb[ref] - emb[pos]) ** 2).sum())
            d_neg = np.sqrt(((emb[ref] - emb[neg]) ** 2).sum())
            sat.append(d_pos <= d_neg)
    assert satisfied_share(emb, i, j, k, odd) == pytest.approx(np.mean(sat))


def test_linear_svm_separable() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 90)
    x = np.eye(3)[y] * 5.0 + rng.normal(scale=0.1, size=(90, 3))
    assert linear_svm_accuracy(x[:60], y[:60], x[60:], y[60:]) == 1.0
