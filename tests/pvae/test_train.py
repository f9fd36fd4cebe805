"""Tiny end-to-end runs of VAE, M1 and M2 on synthetic landmarks; loading and codes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from exprsim.pvae.codes import is_pvae_run, load_pvae
from exprsim.pvae.model import create_landmark_model, list_landmark_models
from exprsim.training.pvae import PVAETrainConfig, ordered_triplets, train_pvae


def _cfg(model: str) -> PVAETrainConfig:
    return PVAETrainConfig(
        model=model,
        data="synthetic",
        max_train=300,
        iterations=8,
        batch_size=32,
        eval_every=4,
        latent_dim=4,
        encoder_hidden=(16,),
        decoder_hidden=(16,),
        anneal_iterations=4,
        triplet_samples=2,
    )


def test_registry() -> None:
    assert list_landmark_models() == ["pvae-m1", "pvae-m2", "pvae-vae"]
    m = create_landmark_model("pvae-m1", input_dim=12, latent_dim=3, encoder_hidden=(8,))
    assert m.encoder[0].in_features == 24  # features + neutral face
    assert m.decoder[0].in_features == 3 + 12
    assert create_landmark_model("pvae-vae", input_dim=12).encoder[0].in_features == 12


@pytest.mark.parametrize("model", ["pvae-vae", "pvae-m1", "pvae-m2"])
def test_tiny_training_run(model: str, tmp_path) -> None:
    res = train_pvae(_cfg(model), tmp_path, progress=False)
    assert res.iterations_run == 8 and np.isfinite(res.best_val_loss)
    assert (res.n_triplets > 0) == (model == "pvae-m2")
    for name in ("train_config.json", "pvae_config.json", "model.safetensors", "history.json"):
        assert (tmp_path / name).is_file()
    assert json.loads((tmp_path / "pvae_config.json").read_text())["variant"] == model[5:]
    assert is_pvae_run(tmp_path)
    enc = load_pvae(tmp_path, feature_dim=None)  # 24 synthetic features, not a mesh
    x = np.random.default_rng(0).normal(scale=0.05, size=(5, 24)).astype(np.float32)
    z = enc.encode_features(x)
    assert z.shape == (5, 4) and np.isfinite(z).all()
    assert np.allclose(enc.encode_features(x), z)  # eval mode: deterministic
    # a known neutral face is used as an offset: x - neutral + fallback
    fallback = enc.model.neutral.numpy()
    assert np.allclose(
        enc.encode_features(x, neutral=x[0]), enc.encode_features(x - x[0] + fallback), atol=1e-6
    )


def test_ordered_triplets_follow_votes() -> None:
    rng = np.random.default_rng(0)
    dist = rng.dirichlet(np.full(8, 0.3), size=60).astype(np.float32)
    trip, w = ordered_triplets(dist, dist.argmax(1), 50, 0.2, rng)
    assert trip.shape == (50, 3) and w.shape == (50,)
    assert w.mean() == pytest.approx(1.0, abs=1e-5) and (w > 0).all()
    s = np.sqrt(dist)
    dp = np.linalg.norm(s[trip[:, 0]] - s[trip[:, 1]], axis=1)
    dn = np.linalg.norm(s[trip[:, 0]] - s[trip[:, 2]], axis=1)
    assert (dp < dn).all()  # the positive is closer in vote space than the negative


def test_too_few_faces_is_a_data_error(tmp_path) -> None:
    from dataclasses import replace

    from exprsim.errors import DataError

    # 5 faces: the 10% hold-out has none left (was: NaN losses, Infinity in result.json)
    with pytest.raises(DataError, match="at least 8 training and 3 validation"):
        train_pvae(replace(_cfg("pvae-vae"), max_train=5), tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()


def test_codes_refuse_missing_meshes_and_take_none(tmp_path) -> None:
    from dataclasses import replace

    train_pvae(replace(_cfg("pvae-vae"), iterations=4), tmp_path, progress=False)
    enc = load_pvae(tmp_path, feature_dim=None)  # 24 synthetic features, not a mesh
    assert enc.codes(np.zeros((0, 478, 3))).shape == (0, 4)  # was a reshape error
    mesh = np.full((478, 3), np.nan)  # how a face without a mesh is stored
    with pytest.raises(ValueError, match="NaN"):
        enc.codes(mesh)  # was NaN codes, silently
