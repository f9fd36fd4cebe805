"""Eighteenth audit round, distances: integer inputs and the cosine range, against loops."""

from __future__ import annotations

import math

import numpy as np
import pytest

from exprsim import distances as D


def _loop_l2(a: np.ndarray, b: np.ndarray) -> float:
    return math.sqrt(sum((float(x) - float(y)) ** 2 for x, y in zip(a, b, strict=True)))


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int32, np.bool_])
def test_integer_arrays_are_measured_as_numbers(dtype: type) -> None:
    """Before: uint8 / int8 differences wrapped around modulo 256 (errors up to ~230)."""
    rng = np.random.default_rng(0)
    hi = 2 if dtype is np.bool_ else 100
    x = rng.integers(0, hi, (5, 7)).astype(dtype)
    y = rng.integers(0, hi, (4, 7)).astype(dtype)
    want = np.array([[_loop_l2(a, b) for b in y] for a in x])
    np.testing.assert_allclose(D.pairwise_l2(x, y, eps=0.0), want, atol=1e-9)
    np.testing.assert_allclose(D.l2(x[:4], y, eps=0.0), np.diag(want), atol=1e-9)


def test_torch_integer_tensors_too() -> None:
    torch = pytest.importorskip("torch")
    x = torch.tensor([[0, 200], [250, 3]], dtype=torch.uint8)
    got = D.pairwise_l2(x, eps=0.0)
    assert got.dtype == torch.float64
    far = _loop_l2(np.array([0, 200]), np.array([250, 3]))  # 318.29, not a wrapped byte
    np.testing.assert_allclose(got.numpy(), [[0.0, far], [far, 0.0]], atol=1e-9)


def test_cosine_distances_stay_in_their_documented_range() -> None:
    """Before: ``cosine_distance(e, e)`` was -2.4e-7 for float32 unit rows."""
    rng = np.random.default_rng(1)
    e = rng.normal(size=(200, 16)).astype(np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    pair = D.pairwise_cosine_distance(np.concatenate([e, -e]))
    row = D.cosine_distance(e, e)
    assert pair.min() >= 0.0 and pair.max() <= 2.0 and row.min() >= 0.0
    assert np.abs(np.diag(pair)).max() < 1e-6
    assert np.abs(pair[:200, 200:].diagonal() - 2).max() < 1e-6
