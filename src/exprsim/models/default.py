"""``exprnet_s``: the CPU-fast default expression embedding network.

A small residual CNN for 48x48 gray crops framed like FER2013 (exprsim's aligned crops
are resized to 48 px inside :class:`exprsim.models.embedder.Embedder`):

    stem   conv3x3(1->32) @48  + conv3x3 stride 2 (32) -> 24x24
    stage  basic residual blocks 32 @24, 64 @12, 128 @6, 256 @3 (stride-2 first conv)
    pool   global average -> dropout -> FC(256 -> 16) -> BatchNorm -> L2 normalise

Roughly 1.2M parameters and 45M multiply-adds per crop. During training a cosine
classifier over the 16-d embedding (:class:`CosineClassifier`) reads 8 FER+ emotion
logits for the distribution-matching loss; it is not part of the shipped embedder.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from exprsim.models.registry import register_model


def _conv_bn(cin: int, cout: int, stride: int = 1, relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv_bn(cin, cout, stride), _conv_bn(cout, cout, relu=False))
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x), inplace=True)


class ExprNetS(nn.Module):
    """Default embedding network; input ``(N, 1, 48, 48)``, output ``(N, D)`` L2-normalised."""

    def __init__(
        self,
        embedding_dim: int = 16,
        widths: tuple[int, ...] = (32, 64, 128, 256),
        blocks: tuple[int, ...] = (1, 1, 1, 1),
        in_channels: int = 1,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        stem = widths[0]
        self.stem = nn.Sequential(_conv_bn(in_channels, stem), _conv_bn(stem, stem, 2))
        layers: list[nn.Module] = []
        c = stem
        for i, (w, n) in enumerate(zip(widths, blocks, strict=True)):
            for j in range(n):
                layers.append(BasicBlock(c, w, 2 if (j == 0 and i > 0) else 1))
                c = w
        self.stages = nn.Sequential(*layers)
        self.feature_dim = c
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c, embedding_dim, bias=False)
        # BN before the L2 norm centres the embedding: without it pooled ReLU features share
        # one dominant direction and the normalised outputs collapse early in training.
        self.bn = nn.BatchNorm1d(embedding_dim)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for m in self.modules():  # zero-init the last BN of each block: starts as identity
            if isinstance(m, BasicBlock):
                second = m.body[1]
                assert isinstance(second, nn.Sequential)
                last_bn = second[1]
                assert isinstance(last_bn, nn.BatchNorm2d)
                nn.init.zeros_(last_bn.weight)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` -> ``(N, feature_dim)`` pooled features (before the embedding FC)."""
        return self.stages(self.stem(x)).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.bn(self.fc(self.dropout(self.features(x)))), dim=1)


class CosineClassifier(nn.Module):
    """Logits = scale * cos(embedding, class prototype); used only as a training head."""

    def __init__(self, embedding_dim: int, n_classes: int, scale: float = 16.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_classes, embedding_dim) * 0.1)
        self.scale = scale

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        return self.scale * emb @ F.normalize(self.weight, dim=1).t()


@register_model(
    "exprnet_s",
    in_channels=1,
    input_size=48,
    description="small residual CNN, 48x48 gray, ~1.2M params, CPU-fast (default v1-v2)",
)
def exprnet_s(embedding_dim: int = 16, **kwargs: Any) -> ExprNetS:
    return ExprNetS(embedding_dim=embedding_dim, **kwargs)
