"""Soft-label auxiliary losses: match the FER+ vote distribution.

* :class:`DistributionLoss` — ``KL(target || softmax(logits))`` (``kind="kl"``), the
  cross-entropy with soft targets (``kind="ce"``; same gradient, offset by the target entropy)
  or the squared Euclidean distance between square roots (``kind="hellinger"``:
  ``sum_c (sqrt(t_c) - sqrt(p_c))^2 = 2 H^2(t, p)``, bounded by 2; near the target it is half
  the KL, so weight 2 matches KL's curvature there).
  Targets are vote distributions ``(B, C)`` (raw counts are normalised).
* :class:`HellingerMatchingLoss` — a pairwise term that pulls the embedding distance of every
  pair in the batch towards ``scale`` x the Hellinger distance of their vote distributions, so
  the embedding keeps *how much* of each expression a face shows (see FINDINGS.md). With
  ``scale = sqrt(2)`` faces whose votes never overlap (Hellinger 1) become orthogonal on the
  unit sphere, which a 16-d space can realise for all 8 FER+ classes at once.
* :class:`DistanceMatchingLoss` — the same kind of pairwise term against given squared
  distances (e.g. an ensemble of teachers' distances, :func:`ensemble_sq_distances`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from exprsim.distances import pairwise_hellinger, pairwise_l2, pairwise_squared_l2

_REDUCTIONS = ("mean", "sum", "none")
_KINDS = ("kl", "ce", "hellinger")


def _as_distribution(target: torch.Tensor) -> torch.Tensor:
    target = target.clamp_min(0)
    total = target.sum(dim=-1, keepdim=True)
    if bool((total <= 0).any()):
        raise ValueError("every target row needs a positive total (a vote distribution)")
    return target / total


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def soft_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """``-sum_c t_c log softmax(logits)_c``: ``(B, C), (B, C) -> scalar or (B,)``."""
    t = _as_distribution(target.to(logits.dtype))
    loss = -(t * F.log_softmax(logits, dim=-1)).sum(dim=-1)
    return _reduce(loss, reduction)


def kl_to_votes(
    logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """``KL(t || softmax(logits)) = sum_c t_c (log t_c - log p_c)`` with ``0 log 0 = 0``."""
    t = _as_distribution(target.to(logits.dtype))
    logp = F.log_softmax(logits, dim=-1)
    loss = (torch.xlogy(t, t) - t * logp).sum(dim=-1)
    return _reduce(loss, reduction)


def sqrt_softmax(logits: torch.Tensor) -> torch.Tensor:
    """``sqrt(softmax(logits))`` over the last axis as ``exp(log_softmax / 2)``: finite
    gradients however small a probability gets."""
    return (0.5 * F.log_softmax(logits, dim=-1)).exp()


def hellinger_to_votes(
    logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """``sum_c (sqrt(t_c) - sqrt(p_c))^2`` with ``p = softmax(logits)``: ``(B, C) -> (B,)`` or
    reduced (``sqrt(p)`` by :func:`sqrt_softmax`)."""
    t = _as_distribution(target.to(logits.dtype))
    loss = (t.sqrt() - sqrt_softmax(logits)).square().sum(dim=-1)
    return _reduce(loss, reduction)


_FNS = {"kl": kl_to_votes, "ce": soft_cross_entropy, "hellinger": hellinger_to_votes}


class DistributionLoss(nn.Module):
    """Soft-label classification loss against FER+ vote distributions.

    Args:
        kind: ``"kl"`` (default; 0 when the prediction equals the votes), ``"ce"`` or
            ``"hellinger"`` (module docstring).
        temperature: logits are divided by it before the softmax.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Shapes: ``logits`` ``(B, C)``, ``target`` ``(B, C)`` distribution or counts -> scalar
    (or ``(B,)``).
    """

    def __init__(self, kind: str = "kl", temperature: float = 1.0, reduction: str = "mean") -> None:
        super().__init__()
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        if temperature <= 0:
            raise ValueError("temperature must be positive")
        self.kind = kind
        self.temperature = float(temperature)
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _FNS[self.kind](logits / self.temperature, target, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, temperature={self.temperature}, reduction={self.reduction!r}"


class HellingerMatchingLoss(nn.Module):
    """Mean squared gap between embedding distances and scaled vote Hellinger distances.

    ``loss = mean_{i<j} (d(e_i, e_j) - s * H(t_i, t_j))^2`` over the batch's pairs, ``d`` the
    L2 distance (or squared L2 with ``squared=True``, then compared with ``(s H)^2``).

    Args:
        scale: ``s``; ``None`` learns it (a positive scalar parameter, initialised to sqrt(2)).
        squared: compare squared distances.

    Shapes: ``emb`` ``(B, D)``, ``target`` ``(B, C)`` vote distributions or counts -> scalar.
    """

    def __init__(self, scale: float | None = math.sqrt(2.0), squared: bool = False) -> None:
        super().__init__()
        self.squared = bool(squared)
        if scale is None:
            self.log_scale: nn.Parameter | None = nn.Parameter(
                torch.tensor(math.log(math.sqrt(2.0)))
            )
            self.fixed_scale = float("nan")
        else:
            if scale <= 0:
                raise ValueError("scale must be positive")
            self.log_scale = None
            self.fixed_scale = float(scale)

    @property
    def scale(self) -> torch.Tensor | float:
        return self.log_scale.exp() if self.log_scale is not None else self.fixed_scale

    def forward(self, emb: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        n = emb.shape[0]
        if n < 2:
            return emb.sum() * 0.0
        t = _as_distribution(target.to(emb.dtype))
        goal = self.scale * pairwise_hellinger(t)
        if self.squared:
            d = pairwise_squared_l2(emb)
            goal = goal * goal
        else:
            d = pairwise_l2(emb)
        return _mean_pair_gap(d, goal)

    def extra_repr(self) -> str:
        scale = "learned" if self.log_scale is not None else f"{self.fixed_scale:.4g}"
        return f"scale={scale}, squared={self.squared}"


def _mean_pair_gap(d: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
    """``mean_{i<j} (d_ij - goal_ij)^2`` of two ``(B, B)`` matrices (B >= 2)."""
    n = d.shape[0]
    iu = torch.triu_indices(n, n, offset=1, device=d.device)
    gap = d[iu[0], iu[1]] - goal[iu[0], iu[1]]
    return (gap * gap).mean()


def ensemble_sq_distances(vecs: torch.Tensor) -> torch.Tensor:
    """Mean squared L2 distance over T teachers: ``(B, T, D) -> (B, B)``, i.e. the squared
    distances of the teachers' concatenated vectors scaled by ``1 / sqrt(T)``."""
    b, t, d = vecs.shape
    return pairwise_squared_l2(vecs.reshape(b, t * d)) / t


class DistanceMatchingLoss(nn.Module):
    """``mean_{i<j} (|x_i - x_j|^2 - goal_ij)^2`` over the batch's pairs.

    Shapes: ``x`` ``(B, D)``, ``goal`` ``(B, B)`` target squared distances -> scalar.
    """

    def forward(self, x: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        if x.shape[0] < 2:
            return x.sum() * 0.0
        return _mean_pair_gap(pairwise_squared_l2(x), goal.to(x.dtype))
