"""Audit 7, finding 5: a damaged or mismatched perceptual-VAE run folder is one
:class:`ModelError` line from ``load_pvae`` (was: JSON / safetensors / torch tracebacks, one
of them after a whole video analysis). Each test failed before its fix."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from exprsim.cli import main
from exprsim.errors import ModelError
from exprsim.pvae.codes import load_pvae
from exprsim.pvae.evaluate import load_encoders
from exprsim.pvae.features import FEATURE_DIM
from exprsim.samples import sample_path


def _run(folder: Path, dim: int = FEATURE_DIM) -> Path:
    """A perceptual-VAE run folder (random weights) taking ``dim`` features per face."""
    from safetensors.torch import save_file

    from exprsim.config import save_json
    from exprsim.pvae.model import PerceptualVAE, PVAEConfig

    cfg = PVAEConfig(
        variant="vae", input_dim=dim, latent_dim=4, encoder_hidden=(8,), decoder_hidden=(8,)
    )
    net = PerceptualVAE(cfg)
    folder.mkdir(parents=True)
    save_json(cfg, folder / "pvae_config.json")
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    return folder


def _damage(run: Path, how: str) -> None:
    weights = run / "model.safetensors"
    if how == "bad json":
        (run / "pvae_config.json").write_text('{"latent_dim":')
    elif how == "not a config":
        (run / "pvae_config.json").write_text('{"variant": "vae", "colour": "blue"}')
    elif how == "junk weights":
        weights.write_bytes(np.random.default_rng(0).bytes(300))
    elif how == "empty weights":
        weights.write_bytes(b"")
    elif how == "nan weights":
        from safetensors.torch import load_file, save_file

        state = load_file(str(weights))
        next(iter(state.values())).fill_(float("nan"))
        save_file(state, str(weights))
    elif how == "other shapes":
        other = _run(run.parent / "other", FEATURE_DIM)
        text = (
            (other / "pvae_config.json").read_text().replace('"latent_dim": 4', '"latent_dim": 6')
        )
        (run / "pvae_config.json").write_text(text)


@pytest.mark.parametrize(
    ("how", "match"),
    [
        ("bad json", r"pvae_config\.json: not a perceptual-VAE config"),
        ("not a config", r"pvae_config\.json: not a perceptual-VAE config .*colour"),
        ("junk weights", r"model\.safetensors: not a readable safetensors file"),
        ("empty weights", r"model\.safetensors: not a readable safetensors file"),
        ("nan weights", "NaN or infinite weights"),
        ("other shapes", r"model\.safetensors: weights do not fit"),
    ],
)
def test_a_damaged_run_is_one_model_error(tmp_path: Path, how: str, match: str) -> None:
    run = _run(tmp_path / "run")
    _damage(run, how)
    with pytest.raises(ModelError, match=match) as err:
        load_pvae(run)
    assert "\n" not in str(err.value)
    # the evaluation's loader goes through load_pvae (was: SafetensorError not caught)
    with pytest.raises(ModelError, match=match):
        load_encoders([run])


def test_a_run_on_other_features_is_refused_unless_asked(tmp_path: Path) -> None:
    run = _run(tmp_path / "synthetic", dim=24)
    with pytest.raises(ModelError, match=f"trained on 24 landmark features .* give {FEATURE_DIM}"):
        load_pvae(run)  # was: loaded; encoding a mesh failed later with a tensor-size error
    enc = load_pvae(run, feature_dim=None)  # the synthetic runs' own use: encode_features
    assert enc.encode_features(np.zeros((2, 24), np.float32)).shape == (2, 4)
    assert load_pvae(_run(tmp_path / "mesh")).config.input_dim == FEATURE_DIM


def test_video_refuses_a_run_on_other_features_before_any_frame(
    tmp_path: Path, random_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, name in enumerate(("grace_hopper.jpg", "pexels_langer_frame000.jpg")):
        shutil.copy(sample_path(name), frames / f"f{i}.jpg")
    run = _run(tmp_path / "synthetic", dim=24)
    out = tmp_path / "vout"
    argv = ["-q", "video", str(frames), "--embedding", "pvae", "--pvae-model", str(run)]
    # was: detection, embedding and tracking, then a RuntimeError traceback, no report
    rc = main([*argv, "--model", str(random_model_dir), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "trained on 24 landmark features" in err[0]
    assert not out.exists() or not any(out.iterdir())
