"""``exprnet_ens``: the members' mean distribution, rotated ``e`` blocks, the 16-d readout."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from exprsim.models.ensemble import ExprNetEnsemble, reweight_distribution  # noqa: E402
from exprsim.models.registry import create_model  # noqa: E402
from exprsim.models.vgg import ExprNetV  # noqa: E402

TINY = {"stages": [[8], [8], [16], [16]]}


def _ens(k: int = 2, seed: int = 0, **kw: object) -> ExprNetEnsemble:
    torch.manual_seed(seed)
    return ExprNetEnsemble(members=[dict(TINY) for _ in range(k)], **kw).eval()  # type: ignore[arg-type]


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


def test_one_member_reads_out_as_the_member_itself() -> None:
    ens = _ens(1, readout_angle=30.0)
    member = ens.members[0]
    member.readout_angle = 30.0
    x = torch.randn(4, 1, 48, 48)
    with torch.inference_mode():
        torch.testing.assert_close(ens(x), member(x), atol=1e-6, rtol=1e-6)


def test_the_graded_block_is_sqrt_of_the_members_mean_distribution() -> None:
    ens = _ens(3, readout_angle=0.0)
    x = torch.randn(5, 1, 48, 48)
    with torch.inference_mode():
        z = ens(x).numpy()
        probs = [_softmax(m.head(x)[1].numpy()) for m in ens.members]
    mean = sum(probs) / 3  # written out member by member
    np.testing.assert_allclose(z[:, :8], np.sqrt(mean), atol=1e-5)
    np.testing.assert_allclose(z[:, 8:], 0.0, atol=1e-6)
    assert not np.allclose(probs[0], probs[1], atol=1e-3)  # the members do differ


def test_reweight_distribution_matches_a_loop() -> None:
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(8), size=20).astype(np.float32)
    w = rng.uniform(0.2, 5.0, size=8)
    out = reweight_distribution(torch.from_numpy(p), torch.from_numpy(w)).numpy()
    for i in range(20):
        row = [float(p[i, c]) * w[c] for c in range(8)]
        total = sum(row)
        for c in range(8):
            assert out[i, c] == pytest.approx(row[c] / total, rel=1e-5)


def test_uniform_weights_leave_p_unchanged_and_rare_weights_raise_rare_shares() -> None:
    p = torch.tensor([[0.7, 0.2, 0.0, 0.0, 0.0, 0.1, 0.0, 0.0]])
    torch.testing.assert_close(
        reweight_distribution(p, torch.full((8,), 3.0)), p, rtol=1e-6, atol=0
    )
    w = torch.ones(8)
    w[5] = 4.0
    q = reweight_distribution(p, w)
    assert float(q[0, 5]) == pytest.approx(0.4 / 1.3, rel=1e-6)
    assert q[0, 5] > p[0, 5] and q[0, 0] < p[0, 0]


def test_class_weights_reweight_the_graded_block_but_not_the_probabilities() -> None:
    w = [0.5, 1.0, 1.0, 1.0, 1.0, 3.0, 1.5, 2.0]
    plain, weighted = _ens(3, readout_angle=0.0), _ens(3, readout_angle=0.0, class_weights=w)
    x = torch.randn(5, 1, 48, 48)
    with torch.inference_mode():
        z = weighted(x).numpy()
        _, p = weighted.parts(x)
        _, p_plain = plain.parts(x)
    torch.testing.assert_close(p, p_plain)  # same seed, same networks: parts unchanged
    p = p.numpy()
    for i in range(5):  # written out face by face
        q = [p[i, c] * w[c] for c in range(8)]
        np.testing.assert_allclose(z[i, :8], np.sqrt(np.array(q) / sum(q)), atol=1e-5)
    assert not np.allclose(z[:, :8], np.sqrt(p), atol=1e-3)
    with torch.inference_mode():  # equal weights: the plain readout
        same = _ens(3, readout_angle=30.0, class_weights=[2.0] * 8)
        torch.testing.assert_close(same(x), _ens(3, readout_angle=30.0)(x))
    for bad in ([1.0] * 7, [1.0] * 7 + [0.0], [1.0] * 7 + [float("nan")]):
        with pytest.raises(ValueError, match="class_weights"):
            ExprNetEnsemble(members=[TINY], class_weights=bad)


def test_a_rotated_twin_is_brought_back_into_member_zeros_frame() -> None:
    """Member 1 is member 0 with its ``e`` block turned by an orthogonal ``Q`` (and its
    classifier turned alike, so its emotions are unchanged): with ``R_1 = Q^T`` the aligned
    average of the two blocks is member 0's block exactly; without the rotation it is not."""
    ens = _ens(2, readout_angle=45.0, e_members=(0, 1))
    a, b = ens.members
    b.load_state_dict(a.state_dict())
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(8, 8)))
    qt = torch.from_numpy(q.astype(np.float32))
    with torch.no_grad():  # e_b = e_a @ Q
        b.emb.weight.copy_(qt.t() @ a.emb.weight)
        b.emb.bias.copy_(a.emb.bias @ qt)
        b.cls_w.copy_(a.cls_w @ qt)
    x = torch.randn(6, 1, 48, 48)
    with torch.inference_mode():
        e_a, p_a = a.parts(x)
        e_b, p_b = b.parts(x)
        torch.testing.assert_close(e_b, e_a @ qt, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(p_b, p_a, atol=1e-5, rtol=1e-5)
        unaligned, _ = ens.parts(x)
        ens.rotations[1] = qt.t()
        e, p = ens.parts(x)
    torch.testing.assert_close(e, e_a, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(p, p_a, atol=1e-6, rtol=1e-6)
    assert not torch.allclose(unaligned, e_a, atol=1e-2)


def test_only_the_chosen_members_e_blocks_count() -> None:
    ens = _ens(3, readout_angle=90.0, e_members=(2,))
    x = torch.randn(3, 1, 48, 48)
    with torch.inference_mode():
        z = ens(x)
        e2, _ = ens.members[2].parts(x)
    torch.testing.assert_close(z[:, 8:], e2, atol=1e-6, rtol=1e-6)


def test_registry_state_dict_and_load_model_round_trip(tmp_path) -> None:
    from safetensors.torch import save_file

    from exprsim.models.embedder import EmbedderConfig, load_model

    kwargs = {
        "members": [TINY, {**TINY, "flip_average": True}],
        "readout_angle": 15.0,
        "class_weights": [1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 1.0, 1.5],
    }
    torch.manual_seed(1)
    ens = create_model("exprnet_ens", embedding_dim=16, **kwargs).eval()
    with torch.no_grad():
        ens.rotations[1] = torch.from_numpy(np.linalg.qr(np.eye(8)[::-1].copy())[0].astype("f4"))
        for m in ens.modules():  # non-trivial BatchNorm statistics, so folding is tested
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    ens.e_members = (0, 1)
    kwargs["e_members"] = [0, 1]
    save_file(
        {k: v.contiguous() for k, v in ens.state_dict().items()},
        str(tmp_path / "model.safetensors"),
    )
    cfg = EmbedderConfig(model="exprnet_ens", embedding_dim=16, version="t", model_kwargs=kwargs)
    (tmp_path / "config.json").write_text(cfg.to_json())
    crops = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    fused, plain = load_model(str(tmp_path)), load_model(str(tmp_path), fuse=False)
    assert json.loads((tmp_path / "config.json").read_text())["model"] == "exprnet_ens"
    z = fused.embed_crops(crops)
    assert z.shape == (5, 16)
    np.testing.assert_allclose(z, plain.embed_crops(crops), atol=2e-5)
    with torch.inference_mode():  # the saved rotation came back
        torch.testing.assert_close(plain.model.rotations, ens.rotations)
    assert plain.model.class_weights is not None and ens.class_weights is not None
    torch.testing.assert_close(plain.model.class_weights, ens.class_weights)
    with torch.inference_mode():  # the loaded model reads out as the saved one
        ref = ens(next(plain._inputs(crops))).numpy()
    np.testing.assert_allclose(z, ref, atol=2e-5)
    z2, p = fused.embed_with_proba(crops)
    np.testing.assert_allclose(z2, z, atol=1e-6)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(fused.emotion_proba(crops), p, atol=1e-6)


def test_bad_ensembles_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one member"):
        ExprNetEnsemble(members=[])
    with pytest.raises(ValueError, match="hybrid"):
        ExprNetEnsemble(members=[{"readout": "embedding"}])
    with pytest.raises(ValueError, match="e_members"):
        ExprNetEnsemble(members=[TINY], e_members=(1,))
    with pytest.raises(ValueError, match="e_members"):
        ExprNetEnsemble(members=[TINY], e_members=())
    assert isinstance(create_model("exprnet_ens").members[1], ExprNetV)  # two by default


def test_combine_distributions_match_loops() -> None:
    """The three pools against face-by-face formulas; the mean is the shipped default."""
    from exprsim.models.ensemble import combine_distributions

    rng = np.random.default_rng(1)
    ps = [rng.dirichlet(np.ones(8), size=6).astype(np.float32) for _ in range(3)]
    tens = [torch.from_numpy(p) for p in ps]
    got = {m: combine_distributions(tens, m).numpy() for m in ("mean", "hellinger", "geometric")}
    for i in range(6):
        for c in range(8):
            assert got["mean"][i, c] == pytest.approx(sum(p[i, c] for p in ps) / 3, rel=1e-5)
        h = [(sum(float(p[i, c]) ** 0.5 for p in ps) / 3) ** 2 for c in range(8)]
        g = [float(np.prod([p[i, c] for p in ps])) ** (1 / 3) for c in range(8)]
        for c in range(8):
            assert got["hellinger"][i, c] == pytest.approx(h[c] / sum(h), rel=1e-4)
            assert got["geometric"][i, c] == pytest.approx(g[c] / sum(g), rel=1e-4)
    # agreeing members: every pool gives the members' distribution back
    same = combine_distributions([tens[0]] * 3, "geometric")
    torch.testing.assert_close(same, tens[0], rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="combine"):
        combine_distributions(tens, "median")


def test_ensemble_combine_option_pools_the_members() -> None:
    from exprsim.models.ensemble import combine_distributions

    ens = _ens(3, readout_angle=0.0, combine="hellinger")
    x = torch.randn(4, 1, 48, 48)
    with torch.inference_mode():
        probs = [torch.softmax(m.head(x)[1], 1) for m in ens.members]
        _, p = ens.parts(x)
    torch.testing.assert_close(p, combine_distributions(probs, "hellinger"))
    assert _ens(2).combine_mode == "mean"
    with pytest.raises(ValueError, match="combine"):
        _ens(2, combine="max")
