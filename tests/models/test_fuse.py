"""BatchNorm folding: the fused networks compute what the unfused ones compute."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from exprsim.models.fuse import fold_bn_into_conv, fuse_conv_bn  # noqa: E402
from exprsim.models.registry import create_model, list_models, model_spec  # noqa: E402


def _randomise_bn(model: nn.Module, seed: int = 0) -> None:
    """Give every BatchNorm non-trivial statistics and affine parameters (fresh ones are
    identity maps, which would hide a wrong fold)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) * 2 + 0.2)
                if m.weight is not None:
                    m.weight.copy_(torch.randn(n, generator=g) * 0.5 + 1)
                    m.bias.copy_(torch.randn(n, generator=g) * 0.3)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("stride,groups", [(1, 1), (2, 1), (1, 4)])
def test_fold_equals_conv_then_bn(bias: bool, stride: int, groups: int) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 12, 3, stride=stride, padding=1, groups=groups, bias=bias)
    bn = nn.BatchNorm2d(12, eps=1e-3)
    _randomise_bn(bn)
    bn.eval()
    x = torch.randn(3, 8, 11, 11)
    with torch.no_grad():
        want = bn(conv(x))
        got = fold_bn_into_conv(conv, bn)(x)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_fold_refuses_mismatched_or_statless_bn() -> None:
    with pytest.raises(ValueError, match="channels"):
        fold_bn_into_conv(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(5))
    with pytest.raises(ValueError, match="running statistics"):
        fold_bn_into_conv(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, track_running_stats=False))


def test_only_conv_then_bn_pairs_are_folded() -> None:
    torch.manual_seed(1)
    net = nn.Sequential(
        nn.BatchNorm2d(3),  # before a conv: not foldable this way
        nn.Conv2d(3, 6, 3, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.Sequential(nn.Conv2d(6, 6, 1, bias=False), nn.BatchNorm2d(6)),  # nested
        nn.Conv2d(6, 4, 3, padding=1),
        nn.ReLU(),
        nn.BatchNorm2d(4),  # not directly after the conv
    )
    _randomise_bn(net, seed=1)
    net.eval()
    ref = copy.deepcopy(net)
    assert fuse_conv_bn(net) == 2
    kinds = [type(m).__name__ for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(kinds) == 2  # the first and the last stay
    x = torch.randn(2, 3, 9, 9)
    with torch.no_grad():
        torch.testing.assert_close(net(x), ref(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", list_models())
def test_every_registered_network_is_unchanged_by_fusing(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name)
    _randomise_bn(model)
    model.eval()
    ref = copy.deepcopy(model)
    fuse_conv_bn(model)
    spec = model_spec(name)
    size = min(spec.input_size, 32) if name not in ("exprnet_v", "exprnet_s") else spec.input_size
    x = torch.randn(2, spec.in_channels, size, size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), atol=2e-5, rtol=1e-4)


def test_exprnet_v_loses_every_batchnorm() -> None:
    model = create_model("exprnet_v", stages=((8,), (16, 16), (16, 16), (32, 32)))
    assert fuse_conv_bn(model) == 7
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert not model.training


def test_load_model_fuses_by_default(random_model_dir) -> None:
    from exprsim.models.embedder import load_model

    fused, plain = load_model(str(random_model_dir)), load_model(str(random_model_dir), fuse=False)
    n_bn = [sum(isinstance(m, nn.BatchNorm2d) for m in e.model.modules()) for e in (fused, plain)]
    assert n_bn[1] > n_bn[0]
    crops = np.random.default_rng(0).integers(0, 256, (5, 60, 60), dtype=np.uint8)
    np.testing.assert_allclose(fused.embed_crops(crops), plain.embed_crops(crops), atol=1e-5)
