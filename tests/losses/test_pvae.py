"""Perceptual-VAE loss terms against hand-computed values and a naive loop."""

from __future__ import annotations

import math

import pytest
import torch

from exprsim.losses import gaussian_kl, pvae_loss, reconstruction_nll, topological_energy


def test_gaussian_kl_hand_computed() -> None:
    # KL(N(1, e^0) || N(0, 1)) = 0.5 * (1 + 1 - 1 - 0) = 0.5 per dim;
    # KL(N(0, e^2) || N(0, 1)) = 0.5 * (e^2 - 1 - 2)
    mu = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    logvar = torch.tensor([[0.0, 2.0]], dtype=torch.float64)
    expected = 0.5 + 0.5 * (math.exp(2.0) - 3.0)
    assert gaussian_kl(mu, logvar).item() == pytest.approx(expected, rel=1e-12)
    assert gaussian_kl(torch.zeros(3, 4), torch.zeros(3, 4)).abs().max().item() == 0.0


def test_reconstruction_nll_hand_computed() -> None:
    x = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    x_hat = torch.tensor([[0.1, -0.2], [1.0, 1.3]], dtype=torch.float64)
    # (0.01 + 0.04) / (2 * 0.001) = 25; 0.09 / 0.002 = 45
    assert reconstruction_nll(x, x_hat, 1e-3).tolist() == pytest.approx([25.0, 45.0])
    # two Monte Carlo samples are averaged
    both = torch.stack([x_hat, x])
    assert reconstruction_nll(x, both, 1e-3).tolist() == pytest.approx([12.5, 22.5])


def _loop_energy(zr, zp, zn, w):
    m, v, _ = zr.shape
    out = []
    for t in range(v):
        acc = 0.0
        for s in range(m):
            dp = math.sqrt(
                sum((a - b) ** 2 for a, b in zip(zr[s, t].tolist(), zp[s, t].tolist(), strict=True))
            )
            dn = math.sqrt(
                sum((a - b) ** 2 for a, b in zip(zr[s, t].tolist(), zn[s, t].tolist(), strict=True))
            )
            acc += math.log(1.0 + math.exp(dp - dn))
        out.append(float(w[t]) * acc / m)
    return out


def test_topological_energy_matches_loop() -> None:
    g = torch.Generator().manual_seed(0)
    zr, zp, zn = (torch.randn(4, 5, 3, generator=g, dtype=torch.float64) for _ in range(3))
    w = torch.rand(5, generator=g, dtype=torch.float64)
    got = topological_energy(zr, zp, zn, w)
    assert got.tolist() == pytest.approx(_loop_energy(zr, zp, zn, w), rel=1e-9)
    # one sample per triplet: (V, K) inputs
    got1 = topological_energy(zr[0], zp[0], zn[0], w)
    assert got1.tolist() == pytest.approx(_loop_energy(zr[:1], zp[:1], zn[:1], w), rel=1e-9)


def test_pvae_loss_combines_terms() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 4, generator=g, dtype=torch.float64)
    x_hat = torch.randn(2, 6, 4, generator=g, dtype=torch.float64)
    mu, logvar = (torch.randn(6, 3, generator=g, dtype=torch.float64) for _ in range(2))
    z = tuple(torch.randn(3, 5, 3, generator=g, dtype=torch.float64) for _ in range(3))
    w = torch.rand(5, generator=g, dtype=torch.float64)
    t = pvae_loss(x, x_hat, mu, logvar, 0.01, 0.3, z, w, gamma=0.04, triplets_per_face=4.0)
    recon = reconstruction_nll(x, x_hat, 0.01).mean()
    kl = gaussian_kl(mu, logvar).mean()
    topo = topological_energy(*z, w).mean()
    assert t.loss.item() == pytest.approx((recon + 0.3 * kl + 4.0 * topo / 0.04).item())
    plain = pvae_loss(x, x_hat, mu, logvar, 0.01, 1.0)
    assert plain.topo.item() == 0.0
    assert plain.loss.item() == pytest.approx((recon + kl).item())
