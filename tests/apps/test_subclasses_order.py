"""Seventeenth round (determinism audit): `split_classes` gives the same faces the same
sub-classes whatever their order (EM started from rows picked by position)."""

from __future__ import annotations

import numpy as np
import pytest

from exprsim.apps.subclasses import split_classes


def _album(seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Three classes of unit 16-d embeddings, each a few overlapping blobs."""
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for c in range(3):
        centres = rng.normal(size=(4, 16))
        for k, n in enumerate((30, 22, 14, 9)):
            rows.append(centres[k] + rng.normal(scale=0.9, size=(n, 16)))
            labels += [c] * n
    x = np.concatenate(rows)
    return x / np.linalg.norm(x, axis=1, keepdims=True), np.asarray(labels)


@pytest.mark.parametrize("n_components", ["bic", 3])
def test_the_same_faces_in_another_order_get_the_same_subclasses(n_components: object) -> None:
    x, y = _album()
    base = split_classes(x, y, n_components=n_components)
    rng = np.random.default_rng(1)
    for _ in range(4):
        perm = rng.permutation(len(x))
        other = split_classes(x[perm], y[perm], n_components=n_components)
        # face perm[i] is row i of the reordered input: same sub-class id, same parent
        np.testing.assert_array_equal(other.labels, base.labels[perm])
        np.testing.assert_array_equal(other.parent, base.parent)
        assert other.n_components == base.n_components
