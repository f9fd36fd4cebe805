"""Training losses: FEC two-hinge triplet loss, FEENet variant, vote-distribution losses,
perceptual-VAE ELBO terms and triplet prior, Structured Gaussian Manifold (SGM) loss.

The loss classes need torch, which this package imports only when one of them is first
used (the distance helpers they share with the library live in :mod:`exprsim.distances`).
Names resolve through the fixed table ``_EXPORTS``; anything else raises ``AttributeError``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from exprsim.losses.distribution import (
        DistributionLoss,
        HellingerMatchingLoss,
        kl_to_votes,
        soft_cross_entropy,
    )
    from exprsim.losses.fec_triplet import (
        FEC_MARGINS,
        TRIPLET_TYPES,
        FECTripletLoss,
        fec_triplet_loss,
    )
    from exprsim.losses.pvae import (
        PVAELossTerms,
        gaussian_kl,
        pvae_loss,
        reconstruction_nll,
        topological_energy,
    )
    from exprsim.losses.sgm import SGM_SIGMA, SGMLoss, SGMTerms, sgm_posterior, sgm_terms

_EXPORTS: dict[str, str] = {
    "DistributionLoss": "exprsim.losses.distribution",
    "HellingerMatchingLoss": "exprsim.losses.distribution",
    "kl_to_votes": "exprsim.losses.distribution",
    "soft_cross_entropy": "exprsim.losses.distribution",
    "FEC_MARGINS": "exprsim.losses.fec_triplet",
    "TRIPLET_TYPES": "exprsim.losses.fec_triplet",
    "FECTripletLoss": "exprsim.losses.fec_triplet",
    "fec_triplet_loss": "exprsim.losses.fec_triplet",
    "PVAELossTerms": "exprsim.losses.pvae",
    "gaussian_kl": "exprsim.losses.pvae",
    "pvae_loss": "exprsim.losses.pvae",
    "reconstruction_nll": "exprsim.losses.pvae",
    "topological_energy": "exprsim.losses.pvae",
    "SGM_SIGMA": "exprsim.losses.sgm",
    "SGMLoss": "exprsim.losses.sgm",
    "SGMTerms": "exprsim.losses.sgm",
    "sgm_posterior": "exprsim.losses.sgm",
    "sgm_terms": "exprsim.losses.sgm",
}

__all__ = [
    "FEC_MARGINS",
    "SGM_SIGMA",
    "TRIPLET_TYPES",
    "DistributionLoss",
    "FECTripletLoss",
    "HellingerMatchingLoss",
    "PVAELossTerms",
    "SGMLoss",
    "SGMTerms",
    "fec_triplet_loss",
    "gaussian_kl",
    "kl_to_votes",
    "pvae_loss",
    "reconstruction_nll",
    "sgm_posterior",
    "sgm_terms",
    "soft_cross_entropy",
    "topological_energy",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'exprsim.losses' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
