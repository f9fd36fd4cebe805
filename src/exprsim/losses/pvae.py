"""Perceptual-VAE objective (Mikheeva et al., eq. 10-11): ELBO terms and the triplet prior.

For a data batch of ``B`` faces and a triplet batch of ``V`` triplets the loss is::

    loss = mean_i [ ||x_i - f(z_i, y_i)||^2 / (2 sigma^2) + beta * KL(q(z|x_i, y_i) || N(0, I)) ]
           + (T / N) * mean_t [ w_t * mean_m softplus(d(z_ref, z_+) - d(z_ref, z_-)) ] / gamma

i.e. the paper's eq. 11 divided by the data-set size ``N`` (which Adam does not see): the
data term is a per-face average, the topological term a per-triplet average scaled by the
number of triplets per face ``T / N``, ``sigma^2`` is the reconstruction variance,
``gamma`` the topological variance, ``beta`` the KL annealing weight (0 -> 1) and ``d`` the
Euclidean distance between latent samples. The Gaussian log-likelihood's constant
``D/2 log(2 pi sigma^2)`` is left out, as in the paper.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from exprsim.distances import l2


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, diag exp(logvar)) || N(0, I))`` per row.

    Args:
        mu, logvar: ``(..., K)`` posterior means and log-variances.

    Returns:
        ``(...)``: ``0.5 * sum_k (mu^2 + exp(logvar) - 1 - logvar)``.
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=-1)


def reconstruction_nll(x: torch.Tensor, x_hat: torch.Tensor, variance: float) -> torch.Tensor:
    """Gaussian negative log-likelihood without its constant, per row.

    Args:
        x: ``(B, D)`` targets.
        x_hat: ``(B, D)`` or ``(L, B, D)`` reconstructions (``L`` Monte Carlo samples,
            averaged).
        variance: reconstruction variance ``sigma^2``.

    Returns:
        ``(B,)``: ``mean_l sum_d (x - x_hat)^2 / (2 sigma^2)``.
    """
    sq = (x_hat - x).pow(2).sum(dim=-1) / (2.0 * variance)
    return sq.mean(dim=0) if x_hat.dim() == 3 else sq


def topological_energy(
    z_ref: torch.Tensor, z_pos: torch.Tensor, z_neg: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Weighted softplus triplet energy ``Phi`` per triplet (paper, Section III-B).

    Args:
        z_ref, z_pos, z_neg: ``(V, K)`` latent samples, or ``(M, V, K)`` for ``M`` samples
            per triplet (averaged).
        weights: ``(V,)`` per-triplet weights ``w_t``.

    Returns:
        ``(V,)``: ``w_t * mean_m softplus(||z_ref - z_+|| - ||z_ref - z_-||)``.
    """
    s = F.softplus(l2(z_ref, z_pos) - l2(z_ref, z_neg))
    if s.dim() == 2:
        s = s.mean(dim=0)
    return weights * s


@dataclass(frozen=True)
class PVAELossTerms:
    """One batch's loss and its parts (scalars).

    Attributes:
        loss: the minimised objective.
        recon: mean reconstruction NLL per face.
        kl: mean KL per face (before ``beta``).
        topo: mean weighted triplet energy per triplet (before ``T / N`` and ``1 / gamma``);
            0 without triplets.
    """

    loss: torch.Tensor
    recon: torch.Tensor
    kl: torch.Tensor
    topo: torch.Tensor


def pvae_loss(
    x: torch.Tensor,
    x_hat: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    variance: float,
    beta: float = 1.0,
    triplet_z: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    triplet_weights: torch.Tensor | None = None,
    gamma: float = 0.04,
    triplets_per_face: float = 1.0,
) -> PVAELossTerms:
    """The batch objective of the module docstring.

    Args:
        x: ``(B, D)`` faces; x_hat: ``(B, D)`` or ``(L, B, D)`` reconstructions.
        mu, logvar: ``(B, K)`` posterior parameters.
        variance: reconstruction variance ``sigma^2``.
        beta: KL weight (annealed 0 -> 1).
        triplet_z: ``(z_ref, z_+, z_-)``, each ``(V, K)`` or ``(M, V, K)``; ``None`` for the
            VAE and M1 (no topological prior).
        triplet_weights: ``(V,)`` ``w_t`` (default ones).
        gamma: topological variance.
        triplets_per_face: ``T / N``.
    """
    recon = reconstruction_nll(x, x_hat, variance).mean()
    kl = gaussian_kl(mu, logvar).mean()
    loss = recon + beta * kl
    topo = torch.zeros((), dtype=x.dtype, device=x.device)
    if triplet_z is not None:
        zr = triplet_z[0]
        w = (
            torch.ones(zr.shape[-2], dtype=zr.dtype, device=zr.device)
            if triplet_weights is None
            else triplet_weights
        )
        topo = topological_energy(*triplet_z, w).mean()
        loss = loss + triplets_per_face * topo / gamma
    return PVAELossTerms(loss, recon, kl, topo)
