"""``exprnet_v``: a plain VGG-style CNN with a graded readout; the v3-v5 default expression
network (v6 to v8 are three of them read out as one: :mod:`exprsim.models.ensemble`).

Trunk (48x48 gray, per-image standardised input)::

    stage 1  conv3x3-BN-ReLU 32                       -> maxpool 2  (24x24)
    stage 2  conv3x3-BN-ReLU 64, 64                   -> maxpool 2  (12x12)
    stage 3  conv3x3-BN-ReLU 128, 128 -> maxpool 2 -> Dropout2d 0.1 (6x6)
    stage 4  conv3x3-BN-ReLU 256, 256 -> maxpool 2 -> Dropout2d 0.1 (3x3)
    global average pool -> dropout 0.3 -> Linear(256 -> head_dim) -> L2 normalise = ``e``

A cosine classifier with a fixed scale (12) plus a bias reads ``e`` and gives 8 FER+ emotion
logits; its softmax ``p`` is trained against the vote distributions.

Readouts (``readout``), all L2-normalised, of dimension ``embedding_dim``:

* ``"embedding"``: ``e`` itself (``head_dim == embedding_dim``);
* ``"hybrid"``: ``[cos(a) * sqrt(p), sin(a) * e]`` with ``head_dim = embedding_dim - 8``.
  ``sqrt(p)`` has unit norm, so Euclidean distances in that block are Hellinger distances
  between predicted emotion distributions (graded: *how much* of each emotion a face shows),
  while ``e`` adds the relational geometry learned against vote Hellinger distances.
  The angle ``a`` (degrees) is chosen on the validation split after training.

With ``flip_average`` every forward pass also embeds the mirrored crop and averages (``p`` and
``e`` separately, then re-normalises): test-time flip averaging inside the network, so every
caller (``Embedder``, evaluation, the trainer's validation) gets it.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from exprsim.models.registry import register_model

#: Widest convolution a ``stages`` setting may ask for: 10**8 channels allocated for 38 s
#: and then failed in the allocator (the shipped trunks use 32 to 512)
MAX_CHANNELS = 8192

#: FER+ emotions read by the classifier (order of :data:`exprsim.data.fer.FERPLUS_CLASSES`).
N_EMOTIONS = 8
READOUTS = ("embedding", "hybrid")


def _cbr(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]


def hybrid_readout(e: torch.Tensor, p: torch.Tensor, angle: float) -> torch.Tensor:
    """``normalise([cos(a) * sqrt(p), sin(a) * e])``, ``a = angle`` degrees: unit rows of
    dimension ``8 + e.shape[1]`` from ``e`` ``(N, d)`` and ``p`` ``(N, 8)``."""
    a = math.radians(angle)
    z = torch.cat([math.cos(a) * p.clamp_min(0).sqrt(), math.sin(a) * e], dim=1)
    return F.normalize(z, dim=1)


class ExprNetV(nn.Module):
    """VGG-style expression network; input ``(N, 1, 48, 48)``, output ``(N, embedding_dim)``.

    Args:
        embedding_dim: dimension of the shipped (readout) vector.
        stages: conv widths per stage; each stage ends with a 2x2 max-pool.
        readout: ``"embedding"`` or ``"hybrid"`` (module docstring); default hybrid when
            ``embedding_dim >= 10``.
        readout_angle: hybrid mixing angle in degrees (0: only ``sqrt(p)``, 90: only ``e``).
        flip_average: average the mirrored crop's prediction in every forward pass.
        classifier_scale: fixed scale of the cosine classifier.
        dropout: before the embedding layer; ``stage_dropout`` after stages 3 and 4.
    """

    def __init__(
        self,
        embedding_dim: int = 16,
        stages: tuple[tuple[int, ...], ...] = ((32,), (64, 64), (128, 128), (256, 256)),
        readout: str | None = None,
        readout_angle: float = 45.0,
        flip_average: bool = False,
        classifier_scale: float = 12.0,
        dropout: float = 0.3,
        stage_dropout: float = 0.1,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        if readout is None:  # hybrid when there is room for sqrt(p) and an embedding
            readout = "hybrid" if embedding_dim >= N_EMOTIONS + 2 else "embedding"
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
        head_dim = embedding_dim - N_EMOTIONS if readout == "hybrid" else embedding_dim
        if head_dim < 2:
            raise ValueError(f"embedding_dim {embedding_dim} too small for readout {readout!r}")
        if not all(1 <= int(w) <= MAX_CHANNELS for stage in stages for w in stage):
            raise ValueError(f"stages must hold channel counts in [1, {MAX_CHANNELS}]")
        layers: list[nn.Module] = []
        c = in_channels
        for i, stage in enumerate(stages):
            for width in stage:
                layers += _cbr(c, int(width))
                c = int(width)
            layers.append(nn.MaxPool2d(2))
            if i >= 2 and stage_dropout > 0:
                layers.append(nn.Dropout2d(stage_dropout))
        self.body = nn.Sequential(*layers)
        self.drop = nn.Dropout(dropout)
        self.emb = nn.Linear(c, head_dim)
        self.cls_w = nn.Parameter(torch.randn(N_EMOTIONS, head_dim) * 0.1)
        self.cls_b = nn.Parameter(torch.zeros(N_EMOTIONS))
        self.readout = readout
        self.readout_angle = float(readout_angle)
        self.flip_average = bool(flip_average)
        self.classifier_scale = float(classifier_scale)
        self.feature_dim = c

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` -> ``(N, feature_dim)`` pooled trunk features."""
        return self.body(x).mean(dim=(2, 3))

    def head(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, C, H, W)`` -> ``(e, logits)``: ``(N, head_dim)`` unit rows, ``(N, 8)``."""
        e = F.normalize(self.emb(self.drop(self.features(x))), dim=1)
        w = F.normalize(self.cls_w, dim=1)
        return e, self.classifier_scale * e @ w.t() + self.cls_b

    def parts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(e, p)`` with flip averaging when enabled: unit ``e`` and softmax ``p`` ``(N, 8)``."""
        if not self.flip_average:
            e, logits = self.head(x)
            return e, logits.softmax(1)
        n = x.shape[0]
        e2, logits2 = self.head(torch.cat([x, x.flip(-1)]))
        p2 = logits2.softmax(1)
        return F.normalize(e2[:n] + e2[n:], dim=1), 0.5 * (p2[:n] + p2[n:])

    def readout_from(self, e: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """The shipped vector from ``e`` and ``p`` (module docstring)."""
        if self.readout == "embedding":
            return e
        return hybrid_readout(e, p, self.readout_angle)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e, p = self.parts(x)
        return self.readout_from(e, p)


@register_model(
    "exprnet_v",
    in_channels=1,
    input_size=48,
    description="VGG-style CNN, 48x48 gray, graded sqrt(p) + 8-d readout (default v3-v5; v6-v8 members)",
)
def exprnet_v(embedding_dim: int = 16, **kwargs: Any) -> ExprNetV:
    if "stages" in kwargs:
        kwargs["stages"] = tuple(tuple(s) for s in kwargs["stages"])
    return ExprNetV(embedding_dim=embedding_dim, **kwargs)
