"""Round 27 (docs/robustness.md): face meshes at any scale."""

from __future__ import annotations

import numpy as np
import pytest

from exprsim.pvae.features import mesh_features, normalise_mesh


@pytest.mark.parametrize("scale", [1e300, 1e-300, 1e150])
def test_a_mesh_at_any_scale_has_the_features_of_the_mesh(scale) -> None:
    mesh = np.random.default_rng(0).uniform(0, 200, size=(478, 3))
    want = mesh_features(mesh)
    got = mesh_features(mesh * scale)
    assert np.isfinite(got).all() and np.abs(got).max() > 0.1  # was all 0 at 1e300
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_normalised_meshes_of_a_batch_at_different_scales() -> None:
    rng = np.random.default_rng(1)
    meshes = rng.uniform(0, 200, size=(3, 478, 3))
    scaled = meshes * np.array([1.0, 1e300, 1e-300])[:, None, None]
    np.testing.assert_allclose(normalise_mesh(scaled), normalise_mesh(meshes), atol=1e-5)
