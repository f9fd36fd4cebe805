"""Shared distance helpers (:mod:`exprsim.distances`): numpy and torch agree, and match
slow loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from exprsim import distances as D


@pytest.fixture()
def xy() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(7, 5)), rng.normal(size=(4, 5))


def test_rowwise_match_loops(xy: tuple[np.ndarray, np.ndarray]) -> None:
    x, _ = xy
    a, b = x[:3], x[3:6]
    for r in range(3):
        assert D.squared_l2(a, b)[r] == pytest.approx(sum((a[r] - b[r]) ** 2))
        assert D.l2(a, b)[r] == pytest.approx(math.sqrt(sum((a[r] - b[r]) ** 2)))
        cos = float(a[r] @ b[r]) / (np.linalg.norm(a[r]) * np.linalg.norm(b[r]))
        assert D.cosine_distance(a, b)[r] == pytest.approx(1 - cos)


def test_pairwise_match_loops(xy: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = xy
    d = D.pairwise_l2(x, y)
    c = D.pairwise_cosine_distance(x, y)
    assert d.shape == (7, 4)
    for r in range(7):
        for s in range(4):
            assert d[r, s] == pytest.approx(np.linalg.norm(x[r] - y[s]), rel=1e-9)
            cos = float(x[r] @ y[s]) / (np.linalg.norm(x[r]) * np.linalg.norm(y[s]))
            assert c[r, s] == pytest.approx(1 - cos, abs=1e-12)
    self_d = D.pairwise_squared_l2(x)
    assert np.all(np.diag(self_d) == 0)
    assert np.allclose(self_d, self_d.T)


def test_numpy_and_torch_agree(xy: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = xy
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    for fn in (D.pairwise_l2, D.pairwise_squared_l2, D.pairwise_cosine_distance):
        assert np.allclose(fn(x, y), fn(tx, ty).numpy(), atol=1e-12)
    assert np.allclose(D.pairwise_l2(x), D.pairwise_l2(tx).numpy(), atol=1e-9)
    assert np.allclose(D.l2(x[:4], y), D.l2(tx[:4], ty).numpy())


def test_hellinger_bounds_and_loop() -> None:
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(8), size=6)
    q = rng.dirichlet(np.ones(8), size=6)
    h = D.hellinger(p, q)
    for r in range(6):
        ref = math.sqrt(0.5 * sum((math.sqrt(p[r, c]) - math.sqrt(q[r, c])) ** 2 for c in range(8)))
        assert h[r] == pytest.approx(ref)
    eye = np.eye(8)
    assert np.allclose(D.pairwise_hellinger(eye), 1 - np.eye(8), atol=1e-6)
    assert D.hellinger(p[:1], p[:1])[0] == pytest.approx(0, abs=1e-6)
    assert np.allclose(
        D.pairwise_hellinger(p, q), D.pairwise_hellinger(torch.from_numpy(p), torch.from_numpy(q))
    )


def test_sqrt_gradient_finite_at_zero_distance() -> None:
    x = torch.ones(3, 4, requires_grad=True)
    (D.pairwise_l2(x).sum() + D.l2(x, x.detach()).sum()).backward()
    assert torch.isfinite(x.grad).all()


def test_losses_alias_is_the_same_module_content() -> None:
    from exprsim.losses import distances as old

    assert old.pairwise_l2 is D.pairwise_l2 and old.hellinger is D.hellinger


def test_l2_normalize() -> None:
    x = np.array([[3.0, 4.0], [0.0, 0.0]])
    n = D.l2_normalize(x)
    assert np.allclose(n[0], [0.6, 0.8])
    assert np.all(np.isfinite(n))


def test_package_exports_and_torch_free_helpers() -> None:
    import subprocess
    import sys

    import exprsim.losses as losses

    assert sorted(losses.__all__) == sorted(losses._EXPORTS)
    for name in losses.__all__:
        assert getattr(losses, name) is not None
    with pytest.raises(AttributeError):
        _ = losses.NoSuchLoss
    code = (
        "import sys, exprsim.distances, exprsim.losses.distances, exprsim.metrics, "
        "exprsim.data.triplets, exprsim.data.augment; assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
