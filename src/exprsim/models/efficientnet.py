"""FEENet (seed 001): EfficientNet-B0 backbone + two FC layers to 16 + L2, in plain torch.

Registered as ``feenet``.

* **Backbone**: EfficientNet-B0 (Tan & Le 2019): 3x3 stem (32, stride 2), seven stages of
  MBConv blocks (expansion 1 or 6, depthwise 3x3/5x5, squeeze-and-excitation with ratio
  0.25 of the block input, swish/SiLU), 1x1 head conv to 1280, global average pooling.
  Batch norm uses the reference eps 1e-3 and momentum 0.01 (TF's 0.99); optional
  stochastic depth (``drop_path_rate``, default 0.2 as in the reference, scaled linearly
  with block index). The trunk has 4,007,548 parameters.
* **Head**: the paper says "two fully-connected layers that reduce the dimensionality of
  the embedding vector from 1280 to just 16, then L2 normalisation" and "4.7M
  parameters" but not the hidden width. ``1280 -> 512 -> 16`` (with BN on the hidden layer)
  adds 664,592 parameters for a total of 4,672,140, i.e. the paper's 4.7M; 256 would give
  4.34M and 1024 5.34M, so 512 is the width the count implies. The hidden layer uses
  swish like the backbone, and dropout 0.2 (EfficientNet-B0's classifier dropout) before
  the last FC; the paper states neither.
* **Input**: the paper feeds 224x224 RGB aligned faces (inter-ocular distance 70 px). The
  network is fully convolutional up to global pooling, so any size >= 32 works; we
  register ``input_size=112`` (3x112x112) so that it trains on CPU-sized budgets from
  48-px FER2013 crops (the final feature map is then 4x4 instead of 7x7).
* No pretrained ImageNet weights are available here (nothing is downloaded); the network
  starts from random initialisation.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from exprsim.models.layers import ConvBNAct, DropPath, EmbeddingHead, SqueezeExcite
from exprsim.models.registry import register_model

_BN_EPS = 1e-3
_BN_MOMENTUM = 0.01

#: EfficientNet-B0 stages: (expand ratio, kernel, stride, out channels, repeats)
B0_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)


def _cba(in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, groups: int = 1) -> ConvBNAct:
    """Conv + BN (reference eps/momentum) + swish."""
    return ConvBNAct(
        in_ch, out_ch, kernel_size, stride, groups, "silu", bn_eps=_BN_EPS, bn_momentum=_BN_MOMENTUM
    )


class MBConv(nn.Module):
    """Mobile inverted bottleneck with squeeze-and-excitation (EfficientNet block).

    ``[1x1 expand -> BN -> swish] -> kxk depthwise -> BN -> swish -> SE -> 1x1 project -> BN``,
    plus an identity residual (with stochastic depth) when shape is preserved.

    Shapes:
        ``(N, in_ch, H, W) -> (N, out_ch, ceil(H / stride), ceil(W / stride))``.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        expand: int,
        kernel_size: int,
        stride: int,
        se_ratio: float = 0.25,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        hidden = in_ch * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(_cba(in_ch, hidden, 1))
        layers += [
            _cba(hidden, hidden, kernel_size, stride, groups=hidden),
            SqueezeExcite(hidden, max(1, int(in_ch * se_ratio)), activation="silu"),
            nn.Conv2d(hidden, out_ch, 1, bias=False),
            nn.BatchNorm2d(out_ch, eps=_BN_EPS, momentum=_BN_MOMENTUM),
        ]
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_ch == out_ch
        self.drop_path = DropPath(drop_path) if self.use_residual else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        if self.use_residual:
            out = x + self.drop_path(out)
        return out


class EfficientNetB0(nn.Module):
    """EfficientNet-B0 feature extractor.

    Args:
        in_channels: input channels (3 in the reference).
        drop_path_rate: maximum stochastic-depth probability (last block).

    Shapes:
        ``(N, in_channels, H, W) -> (N, 1280)`` pooled features.
    """

    num_features = 1280

    def __init__(self, in_channels: int = 3, drop_path_rate: float = 0.2) -> None:
        super().__init__()
        self.stem = _cba(in_channels, 32, 3, 2)
        total = sum(s[4] for s in B0_STAGES)
        blocks: list[nn.Module] = []
        ch, idx = 32, 0
        for expand, k, stride, out, repeats in B0_STAGES:
            for r in range(repeats):
                p = drop_path_rate * idx / total
                blocks.append(MBConv(ch, out, expand, k, stride if r == 0 else 1, drop_path=p))
                ch, idx = out, idx + 1
        self.blocks = nn.Sequential(*blocks)
        self.head_conv = _cba(ch, self.num_features, 1)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head_conv(self.blocks(self.stem(x)))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


class FEENet(nn.Module):
    """EfficientNet-B0 + ``FC(1280, hidden) -> BN -> swish -> dropout -> FC(hidden, d) -> L2``.

    Args:
        embedding_dim: output dimension (16 in the paper).
        in_channels: input channels (3: RGB as in the paper).
        hidden: width of the first FC layer (512 reproduces the paper's 4.7M parameters).
        dropout: dropout before the last FC layer.
        drop_path_rate: stochastic depth of the backbone (0 disables it).

    Shapes:
        ``(N, in_channels, H, W)`` float32 -> ``(N, embedding_dim)`` float32, unit rows.
    """

    def __init__(
        self,
        embedding_dim: int = 16,
        in_channels: int = 3,
        hidden: int = 512,
        dropout: float = 0.2,
        drop_path_rate: float = 0.2,
    ) -> None:
        super().__init__()
        self.backbone = EfficientNetB0(in_channels, drop_path_rate)
        self.head = EmbeddingHead(
            EfficientNetB0.num_features, embedding_dim, hidden, dropout, activation="silu"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


@register_model(
    "feenet",
    in_channels=3,
    input_size=112,
    description="FEENet: EfficientNet-B0 + FC 512 + FC 16 + L2 (4.67M params); 3x112x112 RGB",
)
def build_feenet(embedding_dim: int = 16, **kwargs: Any) -> FEENet:
    """FEENet (seed 001); keyword arguments go to :class:`FEENet`."""
    return FEENet(embedding_dim=embedding_dim, **kwargs)
