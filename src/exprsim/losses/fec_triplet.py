"""FECNet's two-hinge triplet loss (Vemulapalli & Agarwala, CVPR 2019, eq. 1) and FEENet's variant.

A triplet ``(e1, e2, e3)`` has no anchor: its label ``odd`` says which face is *not* like the
other two. With ``(a, b)`` the similar pair and ``c`` the odd face::

    l = max(0, d(a, b) - d(a, c) + m) + max(0, d(a, b) - d(b, c) + m)

``d`` is the L2 distance (FECNet) or the squared L2 distance (``squared=True``, FEENet), and
the margin ``m`` depends on the triplet type: 0.1 for one-class, 0.2 for two- and three-class
triplets (FECNet); FEENet uses 0.2 for all (:meth:`FECTripletLoss.feenet`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from exprsim.distances import l2, squared_l2

#: Triplet type names, indexed by the ``ttype`` code (0, 1, 2).
TRIPLET_TYPES: tuple[str, ...] = ("one", "two", "three")
#: FECNet's margins per triplet type.
FEC_MARGINS: dict[str, float] = {"one": 0.1, "two": 0.2, "three": 0.2}
_REDUCTIONS = ("mean", "sum", "none")


def _margin_tuple(margins: Mapping[str, float] | Sequence[float] | float) -> tuple[float, ...]:
    if isinstance(margins, int | float):
        return (float(margins),) * 3
    if isinstance(margins, Mapping):
        unknown = set(margins) - set(TRIPLET_TYPES)
        if unknown or len(margins) != 3:
            raise ValueError(
                f"margins must have exactly the keys {TRIPLET_TYPES}, got {sorted(margins)}"
            )
        return tuple(float(margins[t]) for t in TRIPLET_TYPES)
    out = tuple(float(m) for m in margins)
    if len(out) != 3:
        raise ValueError(f"margins needs 3 values (one, two, three), got {len(out)}")
    return out


def similar_pair(odd: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions ``(a, b)`` of the similar pair given the odd position: ``(B,) -> (B,), (B,)``."""
    return (odd + 1) % 3, (odd + 2) % 3


def fec_triplet_loss(
    e1: torch.Tensor,
    e2: torch.Tensor,
    e3: torch.Tensor,
    odd: torch.Tensor,
    ttype: torch.Tensor,
    margins: Mapping[str, float] | Sequence[float] | float = FEC_MARGINS,
    squared: bool = False,
    reduction: str = "mean",
) -> torch.Tensor:
    """Functional form of :class:`FECTripletLoss` (same arguments)."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if not (e1.shape == e2.shape == e3.shape) or e1.ndim != 2:
        raise ValueError(
            f"e1, e2, e3 must share a (B, D) shape, got {e1.shape}, {e2.shape}, {e3.shape}"
        )
    batch = e1.shape[0]
    if odd.shape != (batch,) or ttype.shape != (batch,):
        raise ValueError(
            f"odd and ttype must be ({batch},), got {tuple(odd.shape)}, {tuple(ttype.shape)}"
        )
    odd = odd.to(device=e1.device, dtype=torch.long)
    ttype = ttype.to(device=e1.device, dtype=torch.long)
    emb = torch.stack((e1, e2, e3), dim=1)  # (B, 3, D)
    rows = torch.arange(batch, device=e1.device)
    pos_a, pos_b = similar_pair(odd)
    a, b, c = emb[rows, pos_a], emb[rows, pos_b], emb[rows, odd]
    dist = squared_l2 if squared else l2
    d_ab, d_ac, d_bc = dist(a, b), dist(a, c), dist(b, c)
    m = torch.tensor(_margin_tuple(margins), dtype=e1.dtype, device=e1.device)[ttype]
    loss = torch.relu(d_ab - d_ac + m) + torch.relu(d_ab - d_bc + m)
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


class FECTripletLoss(nn.Module):
    """Two-hinge triplet loss with per-type margins (no anchor; label = odd one out).

    Args:
        margins: per-type margin: a mapping with keys ``one``/``two``/``three``, a sequence
            of three floats in that order, or one float for all types.
        squared: use squared L2 distances (FEENet) instead of L2 (FECNet).
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` (per-triplet ``(B,)``).

    Shapes:
        ``e1, e2, e3``: ``(B, D)`` embeddings (L2-normalised in exprsim, not required);
        ``odd``: ``(B,)`` int64 in {0, 1, 2}, the position of the face unlike the other two;
        ``ttype``: ``(B,)`` int64, 0 = one-class, 1 = two-class, 2 = three-class.
        Returns a scalar, or ``(B,)`` with ``reduction="none"`` / ``per_sample=True``.
    """

    def __init__(
        self,
        margins: Mapping[str, float] | Sequence[float] | float = FEC_MARGINS,
        squared: bool = False,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.margins = _margin_tuple(margins)
        self.squared = bool(squared)
        self.reduction = reduction

    @classmethod
    def feenet(cls, margin: float = 0.2, reduction: str = "mean") -> FECTripletLoss:
        """FEENet's loss: squared L2 distances, one margin (0.2) for every triplet type."""
        return cls(margins=margin, squared=True, reduction=reduction)

    def forward(
        self,
        e1: torch.Tensor,
        e2: torch.Tensor,
        e3: torch.Tensor,
        odd: torch.Tensor,
        ttype: torch.Tensor,
        per_sample: bool = False,
    ) -> torch.Tensor:
        return fec_triplet_loss(
            e1,
            e2,
            e3,
            odd,
            ttype,
            margins=self.margins,
            squared=self.squared,
            reduction="none" if per_sample else self.reduction,
        )

    def extra_repr(self) -> str:
        return f"margins={self.margins}, squared={self.squared}, reduction={self.reduction!r}"
