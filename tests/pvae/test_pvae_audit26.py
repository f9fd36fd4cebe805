"""Round 26 (docs/robustness.md): perceptual-VAE runs on changed or small data."""

from __future__ import annotations

from dataclasses import replace

import pytest

import exprsim.training.pvae as pvae_training
from exprsim.errors import DataError
from exprsim.training.pvae import PVAETrainConfig, train_pvae

CFG = PVAETrainConfig(
    model="pvae-m1",
    data="synthetic",
    max_train=120,
    iterations=4,
    batch_size=32,
    eval_every=2,
    latent_dim=4,
    encoder_hidden=(16,),
    decoder_hidden=(16,),
    anneal_iterations=2,
)


def test_a_run_resumed_on_other_meshes_is_refused(tmp_path, monkeypatch):
    out = tmp_path / "run"
    train_pvae(CFG, out, progress=False)
    before = (out / "state.pt").read_bytes()
    real = pvae_training.synthetic_landmarks

    def other(n, seed=0):
        return real(n, seed=seed + 1)  # the same config, other faces (a re-made mesh cache)

    monkeypatch.setattr(pvae_training, "synthetic_landmarks", other)
    with pytest.raises(ValueError, match="training data changed since its last checkpoint"):
        train_pvae(replace(CFG, iterations=6), out, progress=False)
    assert (out / "state.pt").read_bytes() == before
    monkeypatch.setattr(pvae_training, "synthetic_landmarks", real)
    assert train_pvae(replace(CFG, iterations=6), out, progress=False).iterations_run == 2


def test_too_few_validation_faces_for_triplets_is_said_so(tmp_path):
    # 20 faces, 10%: 2 validation faces, fewer than the 3 a validation triplet needs
    cfg = replace(CFG, model="pvae-m2", max_train=20, triplet_samples=2)
    with pytest.raises(DataError, match="at least 8 training and 3 validation faces"):
        train_pvae(cfg, tmp_path / "run", progress=False)


def _identity_encoder():
    from exprsim.pvae.codes import PVAEEncoder
    from exprsim.pvae.features import FEATURE_DIM
    from exprsim.pvae.model import create_landmark_model

    model = create_landmark_model("pvae-m2", input_dim=FEATURE_DIM, neutral_source="identity")
    return PVAEEncoder(model)


def test_one_face_with_its_neutral_prints_no_torch_warning(recwarn):
    import numpy as np

    mesh = np.random.default_rng(0).uniform(0, 200, size=(478, 3))
    assert _identity_encoder().codes(mesh, neutral=mesh + 1).shape[0] == 1
    assert not [w for w in recwarn if "not writable" in str(w.message)]  # was torch's


def test_a_neutral_of_the_wrong_shape_is_said_in_meshes():
    import numpy as np

    mesh = np.random.default_rng(0).uniform(0, 200, size=(478, 3))
    with pytest.raises(ValueError, match=r"neutral must be one mesh \(478, 3\) or one per face"):
        _identity_encoder().codes(np.stack([mesh, mesh]), neutral=np.stack([mesh] * 3))
