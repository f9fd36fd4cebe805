"""Every registered embedding network: shapes, unit norm, gradients, determinism; block checks."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from exprsim.errors import ModelError  # noqa: E402
from exprsim.models.layers import (  # noqa: E402
    AttentionGate,
    DenseBlock,
    DropPath,
    EmbeddingHead,
    L2Norm,
    SqueezeExcite,
    Transition,
    count_parameters,
)
from exprsim.models.registry import create_model, list_models, model_spec  # noqa: E402

PAPER_MODELS = (
    "densenet",
    "attention_densenet",
    "less_densenet",
    "se_densenet",
    "skip_densenet",
    "fecnet",
    "feenet",
)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny batches gain nothing from threads, and on a busy 2-core box they lose a lot."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# networks whose readout needs room for sqrt(p) (8) plus an embedding block
HYBRID_DIM = {"exprnet_ens": 16}

# the paper models pool globally, so tests feed them small inputs to stay fast
SMALL_INPUT = 32


def _input(name: str, n: int = 2, seed: int = 0, size: int | None = None) -> torch.Tensor:
    spec = model_spec(name)
    if size is None:
        size = min(spec.input_size, SMALL_INPUT) if name in PAPER_MODELS else spec.input_size
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, spec.in_channels, size, size, generator=g)


def _first_weight(model: nn.Module) -> torch.Tensor:
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            return m.weight
    raise AssertionError("model has no conv or linear layer")


def test_paper_models_registered() -> None:
    names = list_models()
    for name in PAPER_MODELS:
        assert name in names
    assert list_models("*densenet") == sorted(n for n in PAPER_MODELS if n.endswith("densenet"))


@pytest.mark.parametrize("name", list_models())
def test_shape_norm_gradient_determinism(name: str) -> None:
    """Train mode: (N, d) float32 unit rows, gradients reach the first layer.

    Eval mode: repeated calls agree exactly and a row does not depend on its batch.
    """
    torch.manual_seed(0)
    spec = model_spec(name)
    assert spec.in_channels in (1, 3) and spec.input_size >= 16 and spec.description
    dim = HYBRID_DIM.get(name, 8)
    model = create_model(name, embedding_dim=dim)
    model.train()
    x = _input(name)
    y = model(x)
    assert y.shape == (2, dim) and y.dtype == torch.float32
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y.norm(dim=1), torch.ones(2), atol=1e-5, rtol=0)
    target = torch.randn(2, dim, generator=torch.Generator().manual_seed(1))
    (y * target).sum().backward()
    w = _first_weight(model)
    assert w.grad is not None and float(w.grad.abs().sum()) > 0

    model.eval()
    x = _input(name, seed=3)
    with torch.no_grad():
        a, b, single = model(x), model(x), model(x[:1])
    assert torch.equal(a, b)
    torch.testing.assert_close(single[0], a[0], atol=1e-5, rtol=1e-4)


def test_default_embedding_dim_is_16() -> None:
    model = create_model("densenet", depth=10).eval()
    with torch.no_grad():
        y = model(_input("densenet", size=16))
    assert y.shape == (2, 16)


def test_unknown_model() -> None:
    with pytest.raises(ModelError, match="unknown model"):
        create_model("no_such_net")


# ----------------------------------------------------------------------------- FEENet


def test_feenet_parameter_count_matches_paper() -> None:
    model = create_model("feenet")
    # the reference EfficientNet-B0 trunk (torchvision/timm: 5,288,548 - 1,281,000 classifier)
    assert count_parameters(model.backbone) == 4_007_548
    n = count_parameters(model)
    assert n == 4_672_140
    assert abs(n - 4.7e6) / 4.7e6 < 0.01  # FEENet paper: "4.7M parameters"
    head = [m for m in model.head.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in head] == [(1280, 512), (512, 16)]


def test_feenet_stochastic_depth_schedule() -> None:
    torch.manual_seed(0)
    model = create_model("feenet", drop_path_rate=0.5)
    paths = [m for m in model.modules() if isinstance(m, DropPath)]
    assert len(paths) == 9  # B0 blocks with identity residuals
    assert max(p.p for p in paths) < 0.5 and min(p.p for p in paths) > 0


# ----------------------------------------------------------------------------- FECNet


def test_fecnet_head_is_the_papers() -> None:
    model = create_model("fecnet")
    head = model.head
    reduce_conv = head.reduce[0]
    assert (reduce_conv.in_channels, reduce_conv.out_channels) == (1024, 512)
    assert reduce_conv.kernel_size == (1, 1)
    assert len(head.dense) == 5
    assert head.dense.out_channels == 512 + 5 * 64
    linears = [m for m in head.fc.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(832, 512), (512, 16)]
    assert any(isinstance(m, nn.Dropout) and m.p == 0.5 for m in head.fc.modules())
    assert any(isinstance(m, nn.ReLU6) for m in head.dense.modules())
    assert any(isinstance(m, nn.ReLU6) for m in head.fc.modules())
    # trunk: a 7x7x1024 map at the registered 112 px input, as NN2 (4e) at 224 px
    with torch.no_grad():
        fmap = model.trunk.eval()(_input("fecnet", n=1, size=112))
    assert fmap.shape == (1, 1024, 7, 7)


# ----------------------------------------------------------------------------- DenseNets


def test_densenet_family_structure() -> None:
    plain = create_model("densenet")
    assert len(plain.blocks) == 3 and len(plain.transitions) == 2
    assert [len(b) for b in plain.blocks] == [6, 6, 6]  # BC-40
    less = create_model("less_densenet")
    kinds = [len(layer.body) for layer in less.blocks[0]]
    # alternating BasicBlock (BN, ReLU, conv, dropout) / BottleneckBlock (+ BN, ReLU, conv)
    assert kinds[0] < kinds[1] and kinds[0] == kinds[2] and kinds[1] == kinds[3]
    drops = [[m.p for m in layer.body if isinstance(m, nn.Dropout)] for layer in less.blocks[0]]
    assert set(drops[0]) == {0.2} and set(drops[1]) == {0.5}
    att = create_model("attention_densenet")
    assert len(att.gates) == 2 and all(isinstance(g, AttentionGate) for g in att.gates)
    se = create_model("se_densenet")
    for block in se.blocks:
        assert all(any(isinstance(m, SqueezeExcite) for m in layer.body) for layer in block)
    skip = create_model("skip_densenet")
    assert skip.skip is not None and isinstance(skip.skip.drop, nn.Dropout)
    assert skip.skip.drop.p == 0.5
    for m in (plain, less, att, se):
        assert getattr(m, "skip", None) is None
    with pytest.raises(ModelError):
        create_model("densenet", depth=5)


def test_densenet_accepts_rgb_and_other_sizes() -> None:
    model = create_model("se_densenet", in_channels=3, depth=22).eval()
    with torch.no_grad():
        y = model(torch.randn(2, 3, 20, 20))
    assert y.shape == (2, 16)


# ----------------------------------------------------------------------------- layers


def test_l2norm_and_head() -> None:
    x = torch.randn(5, 7)
    y = L2Norm()(x)
    for i in range(5):  # naive reference
        norm = sum(float(v) ** 2 for v in x[i]) ** 0.5
        torch.testing.assert_close(y[i], x[i] / norm)
    head = EmbeddingHead(7, 4, hidden=6, dropout=0.5).eval()
    out = head(x)
    assert out.shape == (5, 4)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(5))
    assert [type(m).__name__ for m in head.mlp] == ["Linear", "BatchNorm1d", "ReLU6", "Dropout"]


def test_dense_block_and_transition_shapes() -> None:
    block = DenseBlock(10, num_layers=3, growth=4, bottleneck=[False, True, False])
    assert block.out_channels == 22
    x = torch.randn(2, 10, 8, 8)
    out = block(x)
    assert out.shape == (2, 22, 8, 8)
    assert torch.equal(out[:, :10], x)  # dense connectivity keeps the input
    t = Transition(22, 11)
    assert t(out).shape == (2, 11, 4, 4)
    with pytest.raises(ModelError):
        DenseBlock(10, num_layers=3, growth=4, bottleneck=[True])


def test_squeeze_excite_and_attention_scale_their_input() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 8, 5, 5)
    se = SqueezeExcite(8, 2)
    with torch.no_grad():
        ratio = se(x) / x
    # one factor per (sample, channel), in (0, 1)
    assert torch.allclose(ratio, ratio[:, :, :1, :1].expand_as(ratio), atol=1e-5)
    assert float(ratio.min()) > 0 and float(ratio.max()) < 1
    gate = AttentionGate(8, skip_channels=6).eval()
    with torch.no_grad():
        ratio = gate(x, torch.randn(2, 6, 10, 10)) / x
    # one factor per (sample, pixel), shared by all channels
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), atol=1e-5)
    with pytest.raises(ModelError):
        gate(x)


def test_drop_path() -> None:
    x = torch.ones(1000, 3)
    dp = DropPath(0.25)
    assert torch.equal(dp.eval()(x), x)
    y = dp.train()(x)
    kept = (y[:, 0] > 0).float().mean()
    assert 0.65 < float(kept) < 0.85
    torch.testing.assert_close(y[y > 0], torch.full_like(y[y > 0], 1 / 0.75))
