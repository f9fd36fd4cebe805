"""``exprnet_ens``: several independently trained ``exprnet_v`` networks read out as one vector.

Every member maps a crop to a unit vector ``e_k`` (``head_dim = embedding_dim - 8``) and an
emotion distribution ``p_k`` (8 FER+ emotions). The ensemble reads them out in the members'
own hybrid form, so the shipped vector keeps ``embedding_dim`` (16) dimensions::

    p  = mean_k p_k                                   (the members' mean distribution; see
                                                       ``combine`` for the other pools)
    e  = normalise(sum_{k in e_members} e_k @ R_k)     (R_k: head_dim x head_dim, stored)
    z  = normalise([cos(a) * sqrt(p'), sin(a) * e])    p' = normalise(p * w)  (w: class_weights)

``sqrt(p)`` is where an ensemble's gain lives for vote triplets: the Hellinger geometry of the
averaged distribution. The members' ``e`` blocks are trained separately, so their axes do not
correspond; ``R_k`` rotates member ``k``'s block into member 0's frame (orthogonal Procrustes on
training faces, fitted by the training side) before they are averaged. ``e_members = (0,)``
with ``R_0 = I`` keeps member 0's block alone.

Cost: the sum of the members' costs (every member sees every crop).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from exprsim.models.registry import register_model
from exprsim.models.vgg import N_EMOTIONS, ExprNetV, hybrid_readout

#: How the members' distributions are pooled into one ``p`` (``ExprNetEnsemble(combine=...)``).
COMBINE_MODES = ("mean", "hellinger", "geometric")


def combine_distributions(ps: Sequence[torch.Tensor], mode: str = "mean") -> torch.Tensor:
    """One ``(N, C)`` distribution from the members' ``(N, C)`` rows ``ps``.

    ``"mean"``: ``mean_k p_k``; ``"hellinger"``: ``normalise((mean_k sqrt(p_k))^2)``, the
    barycentre under the Hellinger distance; ``"geometric"``: ``normalise(exp(mean_k log
    p_k))``, the log-opinion pool (``p_k`` floored at 1e-12).

    Raises:
        ValueError: an unknown ``mode``.
    """
    if mode not in COMBINE_MODES:
        raise ValueError(f"combine must be one of {COMBINE_MODES}, got {mode!r}")
    stack = torch.stack(list(ps))
    if mode == "mean":
        return stack.mean(0)
    if mode == "hellinger":
        q = stack.clamp_min(0).sqrt().mean(0).square()
    else:
        q = stack.clamp_min(1e-12).log().mean(0).exp()
    return q / q.sum(dim=1, keepdim=True).clamp_min(1e-12)


def reweight_distribution(p: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Rows of ``p`` ``(N, C)`` times ``w`` ``(C,)``, renormalised to sum 1 (the readout's
    ``p' = normalise(p * w)``)."""
    q = p * w.to(p.device, p.dtype)
    return q / q.sum(dim=1, keepdim=True).clamp_min(1e-12)


class ExprNetEnsemble(nn.Module):
    """Input ``(N, 1, 48, 48)``, output ``(N, embedding_dim)`` unit rows (module docstring).

    Args:
        embedding_dim: dimension of the shipped vector; each member is a hybrid
            ``exprnet_v`` of this dimension.
        members: one ``exprnet_v`` keyword dict per member (``stages``, ``flip_average``...);
            default two members of ``exprnet_v``'s default architecture.
        readout_angle: mixing angle in degrees (0: only ``sqrt(p)``, 90: only ``e``).
        e_members: indices of the members whose (rotated) ``e`` blocks are averaged.
        class_weights: 8 positive weights; the readout reads ``normalise(p * w)`` instead of
            ``p`` (``None``: ``p`` itself).
        combine: how the members' distributions are pooled into ``p``, one of
            :data:`COMBINE_MODES` (:func:`combine_distributions`; default the mean).

    Raises:
        ValueError: fewer than one member, a member that is not hybrid, a bad index, or
            class weights that are not 8 positive finite numbers, an unknown ``combine``.
    """

    def __init__(
        self,
        embedding_dim: int = 16,
        members: Sequence[dict[str, Any]] | None = None,
        readout_angle: float = 15.0,
        e_members: Sequence[int] = (0,),
        class_weights: Sequence[float] | None = None,
        combine: str = "mean",
    ) -> None:
        super().__init__()
        if combine not in COMBINE_MODES:
            raise ValueError(f"combine must be one of {COMBINE_MODES}, got {combine!r}")
        self.combine_mode = combine
        if members is None:
            members = ({}, {})
        if not members:
            raise ValueError("an ensemble needs at least one member")
        nets = []
        for kw in members:
            kw = dict(kw)
            if kw.pop("readout", "hybrid") != "hybrid":
                raise ValueError("every ensemble member must have the hybrid readout")
            if "stages" in kw:
                kw["stages"] = tuple(tuple(s) for s in kw["stages"])
            kw.pop("readout_angle", None)  # the ensemble reads the members out itself
            nets.append(ExprNetV(embedding_dim=embedding_dim, readout="hybrid", **kw))
        self.members = nn.ModuleList(nets)
        self.head_dim = embedding_dim - N_EMOTIONS
        idx = tuple(int(i) for i in e_members)
        if not idx or any(not 0 <= i < len(nets) for i in idx):
            raise ValueError(f"e_members {list(e_members)} must index the {len(nets)} members")
        self.e_members = idx
        eye = torch.eye(self.head_dim).expand(len(nets), -1, -1).clone()
        self.register_buffer("rotations", eye)  # (K, head_dim, head_dim)
        self.readout_angle = float(readout_angle)
        self.class_weights: torch.Tensor | None = None
        if class_weights is not None:
            values = [float(v) for v in class_weights]  # checked in Python: no tensor read
            if len(values) != N_EMOTIONS or not all(math.isfinite(v) and v > 0 for v in values):
                raise ValueError(
                    f"class_weights must be {N_EMOTIONS} positive numbers, got {list(class_weights)}"
                )
            self.class_weights = torch.as_tensor(values, dtype=torch.float32)

    def parts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(e, p)``: the combined unit ``e`` ``(N, head_dim)`` and mean ``p`` ``(N, 8)``."""
        nets = cast(list[ExprNetV], list(self.members))
        es, ps = zip(*(m.parts(x) for m in nets), strict=True)
        return self.combine(es, ps)

    def combine(
        self, es: Sequence[torch.Tensor], ps: Sequence[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(e, p)`` from the members' own ``e_k`` ``(N, head_dim)`` and ``p_k`` ``(N, 8)``
        (one of each per member, in order): the module docstring's formulas."""
        rot = cast(torch.Tensor, self.rotations)
        p = combine_distributions(ps, self.combine_mode)
        e = torch.stack([es[i] @ rot[i] for i in self.e_members]).sum(0)
        return F.normalize(e, dim=1), p

    def readout_from(self, e: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """The shipped vector from ``e`` and ``p`` (module docstring)."""
        if self.class_weights is not None:
            p = reweight_distribution(p, self.class_weights)
        return hybrid_readout(e, p, self.readout_angle)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e, p = self.parts(x)
        return self.readout_from(e, p)


@register_model(
    "exprnet_ens",
    in_channels=1,
    input_size=48,
    description="default v6-v8: exprnet_v networks averaged, sqrt(mean p) + aligned 8-d readout",
)
def exprnet_ens(embedding_dim: int = 16, **kwargs: Any) -> ExprNetEnsemble:
    return ExprNetEnsemble(embedding_dim=embedding_dim, **kwargs)
