"""The DenseNet family of the student report (seed 002) as expression-embedding networks.

Registered names: ``densenet``, ``attention_densenet``, ``less_densenet``,
``se_densenet``, ``skip_densenet``. Each is a three-block DenseNet in the CIFAR style the
report describes ("a single convolutional layer, three dense blocks of BasicBlock or
BottleneckBlock layers, two transition layers, then batch norm, ReLU, global average
pooling and a fully connected layer"), with the classifier FC replaced by an embedding FC
to ``d`` followed by L2 normalisation (:class:`~exprsim.models.layers.EmbeddingHead`).

What the report's text fixes, and what we had to choose (each choice is a keyword
argument of the builders):

* **Input.** The text does not say. Its public training script resized FEC crops to
  224x224 RGB; our training data (FER2013) is 48x48 gray, and this architecture has no
  stem downsampling (it was designed for 32-px CIFAR images), so we register every
  family member for **1x48x48 gray** input (``in_channels`` is a keyword; any input size
  works thanks to adaptive pooling).
* **Depth / width.** "Layer count: dynamic; model depth: variable". Defaults: DenseNet-BC
  style, ``depth=40``, ``growth_rate=12``, ``reduction=0.5``, ``bottleneck=True``
  (``(depth - 4) // 6`` bottleneck layers per block), the stem conv has
  ``2 * growth_rate`` filters. The report's script used ``depth=120, growth_rate=32``;
  pass those to reproduce its size.
* **Dropout.** "Yes, within blocks": after every conv of a dense layer and transition,
  default ``drop_rate=0.2`` (Huang et al.'s rate; the report gives none).
* **Initialisation.** Kaiming normal (fan-out) for every conv, as the report's
  comparison table states for all five models; BN weight 1, bias 0; linear bias 0.
* **AttentionDenseNet.** "Attention blocks inserted after each transition layer ...
  convolutional layers followed by batch normalization, ReLU activation, and a sigmoid
  function to generate attention maps, which weight the input feature maps." We use an
  additive attention gate (:class:`~exprsim.models.layers.AttentionGate`) whose map is
  computed from the transition output and the pre-transition dense-block output and
  multiplies the transition output. (The report's comparison table says "SE module" for
  this model; its prose, which we follow, describes spatial attention maps. Its public
  code multiplied a channel-reduced copy of the skip instead of the transition output;
  we follow the prose, "weight the input feature maps".)
* **LessDenseNet.** "Alternates block types (BasicBlock and BottleneckBlock) based on
  the layer index" and "an additional dropout rate ... alternates its application":
  even layers are BasicBlocks with ``drop_rate``, odd layers BottleneckBlocks with
  ``drop_rate_alt`` (default 0.5, the report's code default). Same number of layers per
  block as ``densenet``.
* **SEDenseNet.** An SE block inside every dense layer, on its new channels before
  concatenation, width ``max(4, growth_rate // 16)`` (reduction 16 as in SE-Net, floored
  so a 12-channel growth still gets a usable bottleneck).
* **SkipDenseNet.** "Skip connections between dense blocks" with "dropout within the
  skip connections": a skip block fuses the outputs of transition 1 (pooled to the
  resolution of transition 2) and transition 2 as ``concat[proj(t1), proj(t2), t1, t2]``
  -> BN -> ReLU -> 1x1 conv -> dropout(``skip_drop_rate=0.5``) and feeds the result to
  dense block 3.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from exprsim.errors import ModelError
from exprsim.models.layers import (
    AttentionGate,
    DenseBlock,
    EmbeddingHead,
    Transition,
    make_activation,
)
from exprsim.models.registry import register_model

#: input spec shared by the family (FER2013-native)
IN_CHANNELS = 1
INPUT_SIZE = 48


class SkipFusion(nn.Module):
    """SkipDenseNet's skip block: fuse an earlier, larger map ``a`` with a later map ``b``.

    ``concat[pool(BN-ReLU-conv1x1(a)), BN-ReLU-conv1x1(b), pool(a), b] -> BN -> ReLU ->
    conv1x1(out_ch) -> dropout``, where ``pool`` is average pooling to ``b``'s size.

    Shapes:
        ``a: (N, C_a, H_a, W_a)``, ``b: (N, C_b, H, W)`` -> ``(N, out_ch, H, W)``.
    """

    def __init__(self, a_ch: int, b_ch: int, out_ch: int, drop_rate: float = 0.5) -> None:
        super().__init__()
        self.proj_a = nn.Sequential(
            nn.BatchNorm2d(a_ch), nn.ReLU(inplace=True), nn.Conv2d(a_ch, out_ch, 1)
        )
        self.proj_b = nn.Sequential(
            nn.BatchNorm2d(b_ch), nn.ReLU(inplace=True), nn.Conv2d(b_ch, out_ch, 1)
        )
        cat = 2 * out_ch + a_ch + b_ch
        self.fuse = nn.Sequential(
            nn.BatchNorm2d(cat), nn.ReLU(inplace=True), nn.Conv2d(cat, out_ch, 1)
        )
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        size = (int(b.shape[-2]), int(b.shape[-1]))
        pa = F.adaptive_avg_pool2d(self.proj_a(a), size)
        z = torch.cat([pa, self.proj_b(b), F.adaptive_avg_pool2d(a, size), b], dim=1)
        return self.drop(self.fuse(z))


class DenseNetEmbedder(nn.Module):
    """Three-block DenseNet (report variants selected by ``variant``) + embedding head.

    Args:
        embedding_dim: output dimension ``d``.
        variant: ``plain``, ``attention``, ``less``, ``se`` or ``skip``.
        in_channels: 1 (gray) or 3 (RGB).
        depth: total depth in the DenseNet convention; ``(depth - 4) // 3`` convs per block.
        growth_rate: channels added per dense layer.
        reduction: channel compression of the transitions.
        bottleneck: BottleneckBlock (True) or BasicBlock (False) layers (ignored by
            ``less``, which alternates).
        drop_rate: dropout inside blocks and transitions.
        drop_rate_alt: LessDenseNet's second dropout rate (odd layers).
        skip_drop_rate: SkipDenseNet's dropout in the skip block.
        se_reduction: SEDenseNet's SE reduction.
        head_dropout: dropout before the embedding FC.

    Shapes:
        ``(N, in_channels, H, W)`` float32 -> ``(N, embedding_dim)`` float32, unit rows.
    """

    VARIANTS = ("plain", "attention", "less", "se", "skip")

    def __init__(
        self,
        embedding_dim: int = 16,
        variant: str = "plain",
        in_channels: int = IN_CHANNELS,
        depth: int = 40,
        growth_rate: int = 12,
        reduction: float = 0.5,
        bottleneck: bool = True,
        drop_rate: float = 0.2,
        drop_rate_alt: float = 0.5,
        skip_drop_rate: float = 0.5,
        se_reduction: int = 16,
        head_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if variant not in self.VARIANTS:
            raise ModelError(f"unknown DenseNet variant {variant!r}; known: {self.VARIANTS}")
        convs_per_block = (depth - 4) // 3
        n = convs_per_block // 2 if (bottleneck or variant == "less") else convs_per_block
        if n < 1:
            raise ModelError(f"depth={depth} leaves no dense layers per block")
        self.variant = variant
        bots: bool | list[bool] = bottleneck
        drops: float | list[float] = drop_rate
        if variant == "less":
            bots = [i % 2 == 1 for i in range(n)]
            drops = [drop_rate if i % 2 == 0 else drop_rate_alt for i in range(n)]
        se = se_reduction if variant == "se" else None

        ch = 2 * growth_rate
        self.stem = nn.Conv2d(in_channels, ch, 3, padding=1, bias=False)
        blocks, transitions, gates = [], [], []
        for b in range(3):
            block = DenseBlock(ch, n, growth_rate, bots, drops, "relu", se)
            blocks.append(block)
            ch = block.out_channels
            if b < 2:
                out = math.floor(ch * reduction)
                transitions.append(Transition(ch, out, drop_rate))
                if variant == "attention":
                    gates.append(AttentionGate(out, skip_channels=ch))
                ch = out
        self.blocks = nn.ModuleList(blocks)
        self.transitions = nn.ModuleList(transitions)
        self.gates = nn.ModuleList(gates)
        self.skip: SkipFusion | None = None
        if variant == "skip":
            t1 = transitions[0].out_channels
            t2 = transitions[1].out_channels
            self.skip = SkipFusion(t1, t2, t2, skip_drop_rate)
        self.final = nn.Sequential(nn.BatchNorm2d(ch), make_activation("relu"))
        self.num_features = ch
        self.head = EmbeddingHead(ch, embedding_dim, hidden=None, dropout=head_dropout)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W) -> (N, num_features)`` pooled backbone features."""
        out = self.stem(x)
        t_outs = []
        for b, block in enumerate(self.blocks):
            out = block(out)
            if b < 2:
                pre = out
                out = self.transitions[b](out)
                if self.gates:
                    out = self.gates[b](out, pre)
                t_outs.append(out)
                if self.skip is not None and b == 1:
                    out = self.skip(t_outs[0], t_outs[1])
        out = self.final(out)
        return torch.flatten(F.adaptive_avg_pool2d(out, 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


def _builder(variant: str) -> Callable[..., DenseNetEmbedder]:
    def build(embedding_dim: int = 16, **kwargs: Any) -> DenseNetEmbedder:
        return DenseNetEmbedder(embedding_dim=embedding_dim, variant=variant, **kwargs)

    build.__name__ = f"build_{variant}_densenet"
    build.__doc__ = f"DenseNet variant {variant!r} (see :mod:`exprsim.models.densenet`)."
    return build


_FAMILY = {
    "densenet": ("plain", "report DenseNet (BC-40, k=12) + FC + L2; 1x48x48 gray"),
    "attention_densenet": (
        "attention",
        "report AttentionDenseNet: attention gates after both transitions; 1x48x48 gray",
    ),
    "less_densenet": (
        "less",
        "report LessDenseNet: alternating basic/bottleneck layers and dropout; 1x48x48 gray",
    ),
    "se_densenet": ("se", "report SEDenseNet: SE block in every dense layer; 1x48x48 gray"),
    "skip_densenet": (
        "skip",
        "report SkipDenseNet: skip block with dropout between dense blocks; 1x48x48 gray",
    ),
}

for _name, (_variant, _desc) in _FAMILY.items():
    register_model(_name, in_channels=IN_CHANNELS, input_size=INPUT_SIZE, description=_desc)(
        _builder(_variant)
    )
