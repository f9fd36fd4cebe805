"""Twelfth robustness round: ``PVAEEncoder.encode_features`` on bad features was a raw
torch ``RuntimeError`` (a 1-D input, a wrong feature count) or NaN codes without a word;
each is now one ``ValueError`` line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from exprsim.pvae.codes import load_pvae

D = 24


@pytest.fixture
def enc(tmp_path: Path):
    import torch
    from safetensors.torch import save_file

    from exprsim.config import save_json
    from exprsim.pvae.model import PerceptualVAE, PVAEConfig

    torch.manual_seed(0)
    cfg = PVAEConfig(
        variant="vae", input_dim=D, latent_dim=4, encoder_hidden=(8,), decoder_hidden=(8,)
    )
    net = PerceptualVAE(cfg)
    folder = tmp_path / "run"
    folder.mkdir()
    save_json(cfg, folder / "pvae_config.json")
    save_file(
        {k: v.contiguous() for k, v in net.state_dict().items()}, str(folder / "model.safetensors")
    )
    return load_pvae(folder, feature_dim=None)


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (np.zeros(D), r"x must be \(N, 24\) features, got shape \(24,\)"),
        (np.zeros((3, D + 1)), r"got shape \(3, 25\)"),
        (np.zeros((2, 3, D)), r"got shape \(2, 3, 24\)"),
        (np.full((2, D), np.nan), "NaN or infinite"),
        ([[1, 2], [3]], "array of numbers"),
    ],
)
def test_bad_features_are_one_line(enc, x, match) -> None:
    with pytest.raises(ValueError, match=match):
        enc.encode_features(x)


def test_bad_neutral_is_one_line(enc) -> None:
    x = np.zeros((2, D), np.float32)
    with pytest.raises(ValueError, match="neutral"):
        enc.encode_features(x, neutral=np.zeros(D + 2))
    with pytest.raises(ValueError, match="neutral holds NaN"):
        enc.encode_features(x, neutral=np.full(D, np.inf))


def test_good_features_still_encode(enc) -> None:
    """Guard: the accepted shapes give codes as before."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, D)).astype(np.float32)
    assert enc.encode_features(x).shape == (5, 4)
    assert enc.encode_features(x, neutral=x[0]).shape == (5, 4)
    assert enc.encode_features(x, neutral=x).shape == (5, 4)
    assert enc.encode_features(np.zeros((0, D))).shape == (0, 4)
    a = enc.encode_features(x[:2])
    # a batch's rows do not depend on the rest of the batch (up to float rounding: torch
    # does not promise the same bits for batches of 2 and 5)
    assert np.isfinite(a).all()
    np.testing.assert_allclose(a, enc.encode_features(x)[:2], rtol=1e-5, atol=1e-6)


def test_neutral_of_another_row_count_is_one_line(enc) -> None:
    with pytest.raises(
        ValueError, match=r"neutral must be \(24,\) or \(3, 24\) features, got \(2, 24\)"
    ):
        enc.encode_features(np.zeros((3, D), np.float32), neutral=np.zeros((2, D), np.float32))
