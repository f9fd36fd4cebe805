"""FECNet (seed 000): the FECNet embedding head on an Inception-style trunk trained here.

Registered as ``fecnet``.

**Head, exactly as the paper** (Vemulapalli & Agarwala, CVPR 2019, Sec. 4 / Fig. 3): the
trunk's feature map goes through a "DenseNet": a 1x1 convolution with 512 filters,
then a dense block of 5 layers with growth rate 64; then average pooling over the map,
an FC layer with 512 units, and a linear FC embedding layer followed by L2
normalisation. Batch norm and ReLU6 are used in the DenseNet and the first FC layer;
dropout 0.5 regularises. Details the paper leaves open, and our choice:

* the 1x1 conv is ``conv -> BN -> ReLU6``; the dense layers are DenseNet-BC bottleneck
  layers (``BN -> ReLU6 -> 1x1 conv (256) -> BN -> ReLU6 -> 3x3 conv (64)``, as in the
  DenseNet paper the FECNet paper cites) and the block ends with ``BN -> ReLU6`` before
  pooling (512 + 5 * 64 = 832 channels);
* dropout 0.5 sits after the 512-unit FC layer (before the embedding layer).

**Trunk: not FaceNet.** FECNet used a *pre-trained, frozen* FaceNet NN2 up to inception
(4e) (a 7x7x1024 map for 224x224 input). Those weights are not available here (and
nothing is downloaded), so the trunk is a small GoogLeNet/NN2-like Inception network
written in plain torch and trained from scratch with the head: a stem (3x3 s2, 3x3,
max-pool, 1x1, 3x3, max-pool), inception blocks 3a, 3b, max-pool, 4a, 4e, ending in a
1024-channel map at stride 16 (trunk 1.83M parameters, 4.36M with the head). NN2's
stride-32 map at 224 px and our stride-16 map at the default 112 px input are both 7x7.

**Input**: the paper feeds 224x224 RGB faces (inter-ocular distance 55 px). We register
``input_size=112`` (3x112x112 RGB) so training fits CPU budgets; the network pools
globally, so other sizes (e.g. 224) work unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from exprsim.models.layers import ConvBNAct, DenseBlock, EmbeddingHead, make_activation
from exprsim.models.registry import register_model


class Inception(nn.Module):
    """GoogLeNet-style inception block: 1x1 | 1x1->3x3 | 1x1->5x5 | 3x3 maxpool->1x1, concatenated.

    Shapes:
        ``(N, in_ch, H, W) -> (N, c1 + c3 + c5 + cp, H, W)``.
    """

    def __init__(self, in_ch: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, cp: int) -> None:
        super().__init__()
        self.b1 = ConvBNAct(in_ch, c1, 1)
        self.b3 = nn.Sequential(ConvBNAct(in_ch, c3r, 1), ConvBNAct(c3r, c3, 3))
        self.b5 = nn.Sequential(ConvBNAct(in_ch, c5r, 1), ConvBNAct(c5r, c5, 5))
        self.bp = nn.Sequential(nn.MaxPool2d(3, 1, 1), ConvBNAct(in_ch, cp, 1))
        self.out_channels = c1 + c3 + c5 + cp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.bp(x)], dim=1)


class InceptionTrunk(nn.Sequential):
    """NN2-like trunk standing in for FaceNet up to inception (4e).

    Shapes:
        ``(N, in_channels, H, W) -> (N, 1024, ceil(H / 16), ceil(W / 16))``.
    """

    out_channels = 1024

    def __init__(self, in_channels: int = 3) -> None:
        i3a = Inception(160, 64, 64, 96, 16, 32, 32)  # 224
        i3b = Inception(i3a.out_channels, 64, 96, 128, 32, 64, 64)  # 320
        i4a = Inception(i3b.out_channels, 192, 96, 208, 16, 48, 64)  # 512
        i4e = Inception(i4a.out_channels, 256, 160, 384, 48, 128, 256)  # 1024
        super().__init__(
            ConvBNAct(in_channels, 32, 3, 2),
            ConvBNAct(32, 64, 3),
            nn.MaxPool2d(3, 2, 1),
            ConvBNAct(64, 64, 1),
            ConvBNAct(64, 160, 3),
            nn.MaxPool2d(3, 2, 1),
            i3a,
            i3b,
            nn.MaxPool2d(3, 2, 1),
            i4a,
            i4e,
        )


class FECNetHead(nn.Module):
    """FECNet's "DenseNet" + pooling + FC 512 + embedding FC + L2.

    Args:
        in_channels: channels of the trunk's feature map.
        embedding_dim: output dimension ``d``.
        conv_channels: filters of the 1x1 conv (512).
        num_layers: layers of the dense block (5).
        growth_rate: growth rate of the dense block (64).
        hidden: units of the first FC layer (512).
        dropout: dropout probability (0.5).

    Shapes:
        ``(N, in_channels, h, w) -> (N, embedding_dim)`` float32, unit rows.
    """

    def __init__(
        self,
        in_channels: int,
        embedding_dim: int = 16,
        conv_channels: int = 512,
        num_layers: int = 5,
        growth_rate: int = 64,
        hidden: int = 512,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.reduce = ConvBNAct(in_channels, conv_channels, 1, activation="relu6")
        self.dense = DenseBlock(
            conv_channels, num_layers, growth_rate, bottleneck=True, activation="relu6"
        )
        ch = self.dense.out_channels
        self.final = nn.Sequential(nn.BatchNorm2d(ch), make_activation("relu6"))
        self.fc = EmbeddingHead(ch, embedding_dim, hidden, dropout, activation="relu6")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final(self.dense(self.reduce(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class FECNet(nn.Module):
    """Inception-like trunk + FECNet head (see the module docstring).

    Args:
        embedding_dim: output dimension (16 in the paper).
        in_channels: 3 (RGB, as the paper) or 1.
        **head_kwargs: passed to :class:`FECNetHead`.

    Shapes:
        ``(N, in_channels, H, W)`` float32 -> ``(N, embedding_dim)`` float32, unit rows.
    """

    def __init__(self, embedding_dim: int = 16, in_channels: int = 3, **head_kwargs: Any) -> None:
        super().__init__()
        self.trunk = InceptionTrunk(in_channels)
        self.head = FECNetHead(InceptionTrunk.out_channels, embedding_dim, **head_kwargs)
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                # the paper trains the new layers "starting from Xavier initialization"
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x))


@register_model(
    "fecnet",
    in_channels=3,
    input_size=112,
    description="FECNet head (1x1-512, dense 5x64, FC 512, FC d, L2) on an Inception trunk "
    "trained here (no FaceNet weights); 3x112x112 RGB",
)
def build_fecnet(embedding_dim: int = 16, **kwargs: Any) -> FECNet:
    """FECNet (seed 000); keyword arguments go to :class:`FECNet`."""
    return FECNet(embedding_dim=embedding_dim, **kwargs)
