"""Landmark normalisation: pose, position and scale are removed exactly."""

from __future__ import annotations

import numpy as np
import pytest

from exprsim.pvae.features import (
    FEATURE_DIM,
    FEATURE_POINTS,
    LEFT_LOWER_LID,
    RIGHT_LOWER_LID,
    mesh_features,
    normalise_mesh,
)


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    cy, sy, cp, sp, cr, sr = (f(a) for a in (yaw, pitch, roll) for f in (np.cos, np.sin))
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return rz @ rx @ ry


def _fake_mesh(seed: int = 0) -> np.ndarray:
    """A random 478-point cloud whose eyes sit left/right and nose base below."""
    rng = np.random.default_rng(seed)
    m = rng.normal(scale=10.0, size=(478, 3))
    m[list(RIGHT_LOWER_LID)] += [-30.0, 0.0, 0.0]
    m[list(LEFT_LOWER_LID)] += [30.0, 0.0, 0.0]
    m[[2, 98, 327]] += [0.0, 40.0, 0.0]
    return m


def test_normalised_frame() -> None:
    n = normalise_mesh(_fake_mesh())
    r = n[list(RIGHT_LOWER_LID)].mean(axis=0)
    left = n[list(LEFT_LOWER_LID)].mean(axis=0)
    assert np.allclose((r + left) / 2, 0.0, atol=1e-5)  # centred between the eyes
    assert np.linalg.norm(left - r) == pytest.approx(1.0, abs=1e-5)  # unit eye distance
    assert np.allclose(left - r, [1.0, 0.0, 0.0], atol=1e-5)  # eye line along +x
    nose = n[[2, 98, 327]].mean(axis=0)
    assert nose[1] > 0 and abs(nose[2]) < 1e-5  # nose base straight "down" in the x-y plane


def test_rotated_scaled_shifted_copy_normalises_the_same() -> None:
    mesh = _fake_mesh(1)
    ref = normalise_mesh(mesh)
    for k, (yaw, pitch, roll) in enumerate([(0.5, -0.3, 0.2), (-1.0, 0.4, 2.5), (0.0, 0.0, np.pi)]):
        moved = 3.7 * (k + 1) * mesh @ _rotation(yaw, pitch, roll).T + [120.0, -40.0, 7.0 * k]
        assert np.allclose(normalise_mesh(moved), ref, atol=1e-4)
    batch = np.stack([mesh, 2.0 * mesh + 5.0])
    assert np.allclose(normalise_mesh(batch), np.stack([ref, ref]), atol=1e-4)


def test_features_shape_and_points() -> None:
    assert len(set(FEATURE_POINTS)) == len(FEATURE_POINTS) == 125
    assert max(FEATURE_POINTS) < 468  # no iris points
    f = mesh_features(np.stack([_fake_mesh(2), _fake_mesh(3)]))
    assert f.shape == (2, FEATURE_DIM) and f.dtype == np.float32
    with pytest.raises(ValueError):
        normalise_mesh(np.zeros((10, 3)))
