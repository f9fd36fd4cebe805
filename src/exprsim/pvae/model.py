"""The perceptual VAE networks (VAE, M1, M2) and their landmark-model registry.

The image-network registry (:mod:`exprsim.models.registry`) describes networks that map
``(N, C, H, W)`` crops to L2-normalised embeddings; these networks take landmark vectors
(and a neutral face) and return a Gaussian posterior, so they live in a parallel registry
with the same shape: :func:`register_landmark_model`, :func:`create_landmark_model`,
:func:`list_landmark_models`.

Architecture (paper, Section V-C): fully connected layers with ELU non-linearities and
dropout; the encoder maps ``x`` (VAE) or ``[x, y]`` (M1/M2, ``y`` the neutral face) to the
mean and log-variance of ``q(z | x, y)``; the decoder maps ``z`` or ``[z, y]`` to the mean
of ``p(x | z, y)``. The paper's best M2 used encoder ``[498, 480, 240, 120, 60, 30]`` and
decoder ``[279, 300, 400, 300, 249]`` for 83 3-D points (249 features). Our 375 features
are 1.5 times as many, so the defaults scale the hidden widths by 1.5 and keep the 30-d
latent: encoder ``[750, 720, 360, 180, 90, 30]``, decoder ``[405, 450, 600, 450, 375]``.
M2 differs from M1 only in training (the triplet prior), so they share one network.

Inputs are centred with the training mean (stored in the model, as the paper's "centred
using the mean of the training portion"). The fallback neutral face ``neutral`` (used when
``y`` is not given) is also stored: on FER+ it is the mean of the training faces whose
majority vote is neutral (FER has no identities).
"""

from __future__ import annotations

import fnmatch
import itertools
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from exprsim.errors import ModelError
from exprsim.pvae.features import FEATURE_DIM

VARIANTS = ("vae", "m1", "m2")


@dataclass(frozen=True)
class PVAEConfig:
    """Network shape (saved as ``pvae_config.json`` beside the weights).

    Attributes:
        variant: ``"vae"``, ``"m1"`` or ``"m2"``.
        input_dim: feature dimensionality ``D``.
        latent_dim: ``K``.
        encoder_hidden: hidden widths of the encoder.
        decoder_hidden: hidden widths of the decoder.
        dropout: dropout probability after every hidden layer (the paper's "dropout 0.9" is
            a keep probability).
        neutral_source: where training took the neutral faces from: ``"population_mean"``
            (one fallback face for everyone, as on FER) or ``"identity"`` (each person's own).
    """

    variant: str = "m2"
    input_dim: int = FEATURE_DIM
    latent_dim: int = 30
    encoder_hidden: tuple[int, ...] = (720, 360, 180, 90)
    decoder_hidden: tuple[int, ...] = (450, 600, 450)
    dropout: float = 0.1
    neutral_source: str = "population_mean"

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; expected one of {VARIANTS}")
        if self.neutral_source not in ("population_mean", "identity"):
            raise ValueError("neutral_source must be 'population_mean' or 'identity'")

    @property
    def conditional(self) -> bool:
        """Whether the networks take the neutral face (M1, M2)."""
        return self.variant != "vae"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _mlp(sizes: list[int], dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), nn.ELU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class PerceptualVAE(nn.Module):
    """VAE / M1 / M2 over landmark feature vectors.

    Args:
        config: network shape.
    """

    def __init__(self, config: PVAEConfig) -> None:
        super().__init__()
        self.config = config
        d, k = config.input_dim, config.latent_dim
        extra = d if config.conditional else 0
        enc = [d + extra, *config.encoder_hidden]
        dec = [k + extra, *config.decoder_hidden]
        self.encoder = _mlp(enc, config.dropout)
        self.to_posterior = nn.Linear(enc[-1], 2 * k)
        self.decoder = _mlp(dec, config.dropout)
        self.to_mean = nn.Linear(dec[-1], d)
        self.mean: torch.Tensor
        self.neutral: torch.Tensor
        self.register_buffer("mean", torch.zeros(d))
        self.register_buffer("neutral", torch.zeros(d))

    def set_statistics(self, mean: torch.Tensor, neutral: torch.Tensor) -> None:
        """Store the training mean ``(D,)`` and the fallback neutral face ``(D,)``."""
        self.mean.copy_(torch.as_tensor(mean, dtype=self.mean.dtype))
        self.neutral.copy_(torch.as_tensor(neutral, dtype=self.neutral.dtype))

    def _neutral(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if y is None:
            return self.neutral.expand(x.shape[0], -1)
        return y.expand(x.shape[0], -1) if y.dim() == 1 else y

    def encode(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior ``q(z | x, y)``.

        Args:
            x: ``(B, D)`` features.
            y: ``(B, D)`` or ``(D,)`` neutral faces (M1/M2; default the fallback neutral);
                ignored by the VAE.

        Returns:
            ``mu, logvar``, each ``(B, K)``.
        """
        h = x - self.mean
        if self.config.conditional:
            h = torch.cat([h, self._neutral(x, y) - self.mean], dim=-1)
        mu, logvar = self.to_posterior(self.encoder(h)).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Mean of ``p(x | z, y)``.

        Args:
            z: ``(B, K)`` or ``(L, B, K)`` latents.
            y: ``(B, D)`` or ``(D,)`` neutral faces (M1/M2; default the fallback neutral).

        Returns:
            ``(B, D)`` or ``(L, B, D)`` features.
        """
        h = z
        if self.config.conditional:
            yc = (self.neutral if y is None else y) - self.mean
            h = torch.cat([z, yc.expand(*z.shape[:-1], -1)], dim=-1)
        return self.to_mean(self.decoder(h)) + self.mean

    def forward(
        self, x: torch.Tensor, y: torch.Tensor | None = None, samples: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode, sample ``samples`` latents per face (reparameterised), decode.

        Returns:
            ``x_hat (L, B, D), mu (B, K), logvar (B, K), z (L, B, K)``.
        """
        mu, logvar = self.encode(x, y)
        z = sample_latent(mu, logvar, samples)
        return self.decode(z, y), mu, logvar, z


def sample_latent(mu: torch.Tensor, logvar: torch.Tensor, samples: int) -> torch.Tensor:
    """``(samples, B, K)`` draws ``mu + exp(logvar / 2) * eps``."""
    eps = torch.randn((samples, *mu.shape), dtype=mu.dtype, device=mu.device)
    return mu + (0.5 * logvar).exp() * eps


_REGISTRY: dict[str, Callable[..., PerceptualVAE]] = {}


def register_landmark_model(name: str) -> Callable[[Callable[..., PerceptualVAE]], Any]:
    """Decorator registering ``builder(**kwargs) -> PerceptualVAE`` as ``name``."""

    def deco(builder: Callable[..., PerceptualVAE]) -> Callable[..., PerceptualVAE]:
        if name in _REGISTRY:
            raise ModelError(f"landmark model {name!r} registered twice")
        _REGISTRY[name] = builder
        return builder

    return deco


def list_landmark_models(pattern: str = "*") -> list[str]:
    """Registered landmark models matching a glob, sorted."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def create_landmark_model(name: str, **kwargs: Any) -> PerceptualVAE:
    """Build a registered landmark model (random init); ``kwargs`` override its config."""
    if name not in _REGISTRY:
        known = ", ".join(list_landmark_models())
        raise ModelError(f"unknown landmark model {name!r}; registered: {known}")
    return _REGISTRY[name](**kwargs)


@register_landmark_model("pvae-vae")
def pvae_vae(**kwargs: Any) -> PerceptualVAE:
    """Standard VAE (symmetric encoder and decoder)."""
    kwargs.setdefault("decoder_hidden", (90, 180, 360, 720))
    return PerceptualVAE(PVAEConfig(variant="vae", **kwargs))


@register_landmark_model("pvae-m1")
def pvae_m1(**kwargs: Any) -> PerceptualVAE:
    """M1: encoder and decoder also take the neutral face."""
    return PerceptualVAE(PVAEConfig(variant="m1", **kwargs))


@register_landmark_model("pvae-m2")
def pvae_m2(**kwargs: Any) -> PerceptualVAE:
    """M2: the M1 network, trained with the topological triplet prior."""
    return PerceptualVAE(PVAEConfig(variant="m2", **kwargs))
