"""Structured Gaussian Manifold (SGM) loss (Marrero Fernandez et al., "Deep Metric Structured
Learning for Facial Expression Recognition", Sec. 3.1, eq. 1-4 and Algorithm 1).

Per batch, every class ``j`` present in the batch gets the mean ``mu_j`` of its members'
embeddings and an isotropic Gaussian ``N(mu_j, sigma^2 I)`` (``sigma = 0.5``). With equal
priors, Bayes' rule gives the posterior of each embedding ``z``::

    P(w_j | z) = exp(-||z - mu_j||^2 / (2 sigma^2)) / sum_i exp(-||z - mu_i||^2 / (2 sigma^2))

(the Gaussian normalising constants are equal across classes and cancel). The loss is the
squared L2 distance between that posterior and the true posterior of the input, averaged over
the batch (eq. 4), plus the mean L2 norm of the embeddings (Algorithm 1, step 6, weight 1)::

    L = mean_i ||P(. | z_i) - P(. | x_i)||^2  +  norm_weight * mean_i ||z_i||

The true posterior is either a one-hot label or a distribution such as the FER+ vote
distribution; class membership for the means is the label (the distribution's arg-max).
Only classes present in the batch have a mean, so the true posterior is restricted to them
and renormalised (with the balanced class sampler every class is present).

The norm term: the paper's embedding is not normalised, and the term keeps its scale (and so
the sharpness of the posteriors against the fixed ``sigma``) bounded. exprsim's networks
output L2-normalised embeddings, for which the term is the constant 1 with zero gradient;
the sphere already bounds the scale. :class:`SGMLoss` reports the term either way; pass the
pre-normalisation embedding (``TrainConfig.sgm_embedding = "raw"``) to make it act.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from exprsim.distances import pairwise_squared_l2

#: The paper's Gaussian width.
SGM_SIGMA = 0.5


@dataclass(frozen=True)
class SGMTerms:
    """The parts of one SGM loss evaluation (0-d tensors; ``loss`` carries the gradient)."""

    loss: torch.Tensor
    rep: torch.Tensor
    norm: torch.Tensor
    n_classes: int


def class_means(emb: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Means of the embeddings of each class present.

    Args:
        emb: ``(B, D)`` embeddings.
        labels: ``(B,)`` int64 class of each row.

    Returns:
        ``classes`` ``(C',)`` int64 sorted class ids present, ``means`` ``(C', D)``.
    """
    classes, inverse = torch.unique(labels, sorted=True, return_inverse=True)
    onehot = torch.zeros(len(classes), len(labels), dtype=emb.dtype, device=emb.device)
    onehot[inverse, torch.arange(len(labels), device=emb.device)] = 1.0
    means = (onehot @ emb) / onehot.sum(dim=1, keepdim=True)
    return classes, means


def sgm_posterior(emb: torch.Tensor, means: torch.Tensor, sigma: float = SGM_SIGMA) -> torch.Tensor:
    """Posterior of each class given each embedding (isotropic Gaussians, equal priors).

    Args:
        emb: ``(B, D)``; means: ``(C, D)``.

    Returns:
        ``(B, C)`` rows summing to 1.
    """
    logits = -pairwise_squared_l2(emb, means) / (2.0 * sigma * sigma)
    return torch.softmax(logits, dim=1)


def sgm_terms(
    emb: torch.Tensor,
    target: torch.Tensor,
    sigma: float = SGM_SIGMA,
    norm_weight: float = 1.0,
    norm_emb: torch.Tensor | None = None,
) -> SGMTerms:
    """Evaluate the SGM loss and its parts.

    Args:
        emb: ``(B, D)`` embeddings (the space the Gaussians live in).
        target: ``(B,)`` int64 class labels (one-hot true posterior), or ``(B, C)`` float
            true posteriors (e.g. vote distributions; class membership = arg-max).
        sigma: Gaussian width (paper: 0.5).
        norm_weight: weight of the mean-norm regulariser (paper: 1).
        norm_emb: ``(B, D)`` embedding whose norm is regularised (default ``emb``).

    Returns:
        :class:`SGMTerms`.
    """
    if emb.ndim != 2:
        raise ValueError(f"emb must be (B, D), got {tuple(emb.shape)}")
    if target.ndim == 1:
        labels = target.long()
        classes, means = class_means(emb, labels)
        true = (labels[:, None] == classes[None, :]).to(emb.dtype)
    elif target.ndim == 2:
        labels = target.argmax(dim=1)
        classes, means = class_means(emb, labels)
        true = target[:, classes].to(emb.dtype)
        true = true / true.sum(dim=1, keepdim=True).clamp_min(1e-12)
    else:
        raise ValueError(f"target must be (B,) labels or (B, C) posteriors, got {target.shape}")
    if target.shape[0] != emb.shape[0]:
        raise ValueError("emb and target must have the same number of rows")
    post = sgm_posterior(emb, means, sigma)
    rep = ((post - true) ** 2).sum(dim=1).mean()
    ne = emb if norm_emb is None else norm_emb
    norm = ne.norm(dim=1).mean()
    return SGMTerms(rep + norm_weight * norm, rep, norm, len(classes))


class SGMLoss(nn.Module):
    """Structured Gaussian Manifold loss (see the module docstring).

    Args:
        sigma: Gaussian width (paper: 0.5).
        norm_weight: weight of the mean L2 norm regulariser (paper: 1; constant for
            normalised embeddings).

    Call with ``emb (B, D)``, ``target`` ``(B,)`` int labels or ``(B, C)`` true posteriors,
    and optionally ``norm_emb`` (the embedding whose norm is regularised); returns a 0-d loss.
    """

    def __init__(self, sigma: float = SGM_SIGMA, norm_weight: float = 1.0) -> None:
        super().__init__()
        if sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        self.sigma = float(sigma)
        self.norm_weight = float(norm_weight)

    def terms(
        self, emb: torch.Tensor, target: torch.Tensor, norm_emb: torch.Tensor | None = None
    ) -> SGMTerms:
        """The loss and its parts (:class:`SGMTerms`)."""
        return sgm_terms(emb, target, self.sigma, self.norm_weight, norm_emb)

    def forward(
        self, emb: torch.Tensor, target: torch.Tensor, norm_emb: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.terms(emb, target, norm_emb).loss
