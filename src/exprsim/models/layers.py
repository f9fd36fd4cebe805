"""Building blocks shared by every network in :mod:`exprsim.models`.

One implementation of each block, reused by all models:

* :class:`L2Norm` and :class:`EmbeddingHead` (FC layers + L2 normalisation, the last
  stage of every registered embedding network);
* :class:`ConvBNAct` (conv, batch norm, activation);
* :class:`DenseLayer`, :class:`DenseBlock`, :class:`Transition` (DenseNet, Huang et al.
  2017, pre-activation BN-act-conv order; "basic" and "bottleneck" layers);
* :class:`SqueezeExcite` (channel attention, Hu et al. 2018; used by SEDenseNet and the
  EfficientNet MBConv);
* :class:`AttentionGate` (spatial attention map from conv + BN + ReLU + sigmoid; used by
  AttentionDenseNet);
* :class:`DropPath` (stochastic depth).

This module imports torch at import time; it is only imported through the model
registry, never by ``import exprsim``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from exprsim.errors import ModelError

#: activation name -> module factory
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=True),
    "relu6": lambda: nn.ReLU6(inplace=True),
    "silu": lambda: nn.SiLU(inplace=True),
    "swish": lambda: nn.SiLU(inplace=True),
    "identity": nn.Identity,
}


def make_activation(name: str) -> nn.Module:
    """A fresh activation module by name (``relu``, ``relu6``, ``silu``/``swish``, ``identity``)."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ModelError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}") from None


class L2Norm(nn.Module):
    """Row-wise L2 normalisation: ``(N, D) -> (N, D)`` with unit-norm rows."""

    def __init__(self, eps: float = 1e-12) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, p=2.0, dim=1, eps=self.eps)


class EmbeddingHead(nn.Module):
    """Pooled features -> L2-normalised embedding.

    ``hidden=None``: ``dropout -> Linear(in, d) -> L2``.
    ``hidden=h``: ``Linear(in, h) -> BN -> act -> dropout -> Linear(h, d) -> L2`` (the
    FECNet head: "FC 512 + BN + ReLU6 + dropout, then a linear embedding layer").

    Args:
        in_features: size of the pooled feature vector.
        embedding_dim: output dimension ``d``.
        hidden: width of the hidden FC layer, or ``None`` for a single linear layer.
        dropout: dropout probability (before the last linear layer).
        activation: activation of the hidden layer (see :data:`ACTIVATIONS`).
        batch_norm: batch norm after the hidden FC layer.

    Shapes:
        ``(N, in_features) -> (N, embedding_dim)`` float32, rows of unit L2 norm.
    """

    def __init__(
        self,
        in_features: int,
        embedding_dim: int,
        hidden: int | None = None,
        dropout: float = 0.0,
        activation: str = "relu6",
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        if hidden is not None:
            layers.append(nn.Linear(in_features, hidden, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(hidden))
            layers.append(make_activation(activation))
            width = hidden
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        self.mlp = nn.Sequential(*layers)
        self.embed = nn.Linear(width, embedding_dim)
        self.norm = L2Norm()
        self.in_features = in_features
        self.embedding_dim = embedding_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.embed(self.mlp(x)))


class ConvBNAct(nn.Sequential):
    """``Conv2d(bias=False) -> BatchNorm2d -> activation`` with "same"-style padding ``k // 2``.

    Shapes:
        ``(N, in_ch, H, W) -> (N, out_ch, ceil(H / stride), ceil(W / stride))``.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        activation: str = "relu",
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__(
            nn.Conv2d(
                in_ch, out_ch, kernel_size, stride, kernel_size // 2, groups=groups, bias=False
            ),
            nn.BatchNorm2d(out_ch, eps=bn_eps, momentum=bn_momentum),
            make_activation(activation),
        )


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: global pool -> 1x1 conv -> act -> 1x1 conv -> sigmoid -> scale.

    Args:
        channels: channels of the input (and output).
        squeeze_channels: width of the bottleneck.
        activation: activation between the two 1x1 convs (``relu`` in SE-Net, ``silu`` in
            EfficientNet).

    Shapes:
        ``(N, C, H, W) -> (N, C, H, W)``.
    """

    def __init__(self, channels: int, squeeze_channels: int, activation: str = "relu") -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeeze_channels, 1)
        self.act = make_activation(activation)
        self.expand = nn.Conv2d(squeeze_channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        s = self.expand(self.act(self.reduce(s)))
        return x * torch.sigmoid(s)


class DropPath(nn.Module):
    """Stochastic depth: zero a whole residual branch per sample with probability ``p`` (training only)."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p <= 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class DenseLayer(nn.Module):
    """One DenseNet layer; its ``growth`` new channels are concatenated to its input.

    ``bottleneck=False`` ("BasicBlock"): ``BN -> act -> conv3x3(growth)``.
    ``bottleneck=True`` ("BottleneckBlock"): ``BN -> act -> conv1x1(4 * growth) -> BN -> act
    -> conv3x3(growth)``. Dropout (when ``drop_rate > 0``) follows every conv, and an
    optional :class:`SqueezeExcite` recalibrates the new channels before concatenation.

    Shapes:
        ``(N, C, H, W) -> (N, C + growth, H, W)``.
    """

    def __init__(
        self,
        in_ch: int,
        growth: int,
        bottleneck: bool = True,
        drop_rate: float = 0.0,
        activation: str = "relu",
        se_channels: int | None = None,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_ch
        if bottleneck:
            layers += [
                nn.BatchNorm2d(in_ch),
                make_activation(activation),
                nn.Conv2d(in_ch, 4 * growth, 1, bias=False),
            ]
            if drop_rate > 0:
                layers.append(nn.Dropout(drop_rate))
            width = 4 * growth
        layers += [
            nn.BatchNorm2d(width),
            make_activation(activation),
            nn.Conv2d(width, growth, 3, padding=1, bias=False),
        ]
        if se_channels is not None:
            layers.append(SqueezeExcite(growth, se_channels))
        if drop_rate > 0:
            layers.append(nn.Dropout(drop_rate))
        self.body = nn.Sequential(*layers)
        self.out_channels = in_ch + growth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.body(x)], dim=1)


def _per_layer(value: object, n: int, what: str) -> list:
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != n:
            raise ModelError(f"{what}: expected {n} values, got {len(value)}")
        return list(value)
    return [value] * n


class DenseBlock(nn.Sequential):
    """``num_layers`` :class:`DenseLayer` s; each sees the concatenation of all before it.

    Args:
        in_ch: input channels.
        num_layers: number of layers.
        growth: channels added per layer.
        bottleneck: one bool for every layer, or one per layer (LessDenseNet alternates).
        drop_rate: one dropout rate, or one per layer.
        activation: activation name.
        se_reduction: when given, every layer ends with an SE block of width
            ``max(se_min_channels, growth // se_reduction)``.
        se_min_channels: lower bound of the SE width.

    Attributes:
        out_channels: ``in_ch + num_layers * growth``.

    Shapes:
        ``(N, in_ch, H, W) -> (N, out_channels, H, W)``.
    """

    def __init__(
        self,
        in_ch: int,
        num_layers: int,
        growth: int,
        bottleneck: bool | Sequence[bool] = True,
        drop_rate: float | Sequence[float] = 0.0,
        activation: str = "relu",
        se_reduction: int | None = None,
        se_min_channels: int = 4,
    ) -> None:
        bots = _per_layer(bottleneck, num_layers, "bottleneck")
        drops = _per_layer(drop_rate, num_layers, "drop_rate")
        se = None if se_reduction is None else max(se_min_channels, growth // se_reduction)
        layers = []
        ch = in_ch
        for i in range(num_layers):
            layer = DenseLayer(ch, growth, bool(bots[i]), float(drops[i]), activation, se)
            layers.append(layer)
            ch = layer.out_channels
        super().__init__(*layers)
        self.out_channels = ch


class Transition(nn.Sequential):
    """DenseNet transition: ``BN -> act -> conv1x1(out_ch) [-> dropout] -> avgpool 2x2``.

    Shapes:
        ``(N, in_ch, H, W) -> (N, out_ch, H // 2, W // 2)``.
    """

    def __init__(
        self, in_ch: int, out_ch: int, drop_rate: float = 0.0, activation: str = "relu"
    ) -> None:
        layers: list[nn.Module] = [
            nn.BatchNorm2d(in_ch),
            make_activation(activation),
            nn.Conv2d(in_ch, out_ch, 1, bias=False),
        ]
        if drop_rate > 0:
            layers.append(nn.Dropout(drop_rate))
        layers.append(nn.AvgPool2d(2))
        super().__init__(*layers)
        self.out_channels = out_ch


class AttentionGate(nn.Module):
    """Spatial attention map that re-weights a feature map (additive attention gate).

    ``psi = sigmoid(BN(conv1x1(ReLU(BN(W_g g) + BN(W_s s)))))`` and the output is
    ``g * psi`` (one weight per pixel, shared by all channels). ``g`` is the feature map
    to refine; ``s`` is an optional second map (e.g. the dense-block output before a
    transition) that is average-pooled to ``g``'s size and helps decide where to look.

    Args:
        channels: channels of ``g``.
        skip_channels: channels of ``s`` (``None``: the gate looks at ``g`` only).
        inter_channels: width of the hidden 1x1 convs (default ``channels // 2``).

    Shapes:
        ``g: (N, C, H, W)``, ``s: (N, C_s, H', W')`` with ``H' >= H`` -> ``(N, C, H, W)``.
    """

    def __init__(
        self, channels: int, skip_channels: int | None = None, inter_channels: int | None = None
    ) -> None:
        super().__init__()
        inter = inter_channels or max(1, channels // 2)
        self.w_g = nn.Sequential(nn.Conv2d(channels, inter, 1), nn.BatchNorm2d(inter))
        self.w_s = (
            nn.Sequential(nn.Conv2d(skip_channels, inter, 1), nn.BatchNorm2d(inter))
            if skip_channels is not None
            else None
        )
        self.psi = nn.Sequential(
            nn.ReLU(inplace=True), nn.Conv2d(inter, 1, 1), nn.BatchNorm2d(1), nn.Sigmoid()
        )

    def forward(self, g: torch.Tensor, s: torch.Tensor | None = None) -> torch.Tensor:
        a = self.w_g(g)
        if self.w_s is not None:
            if s is None:
                raise ModelError("AttentionGate built with skip_channels needs a skip input")
            if s.shape[-2:] != g.shape[-2:]:
                s = F.adaptive_avg_pool2d(s, (int(g.shape[-2]), int(g.shape[-1])))
            a = a + self.w_s(s)
        return g * self.psi(a)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``model`` (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
