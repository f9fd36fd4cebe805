"""Training runs that must stop instead of writing something wrong: divergence to NaN, a
shortened run, another model's folder, a damaged checkpoint; data that would poison the loss
(the fourth robustness round, docs/robustness.md)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from exprsim.errors import DataError, ExprsimError, ModelError
from exprsim.training.ferplus import train

from .test_ferplus_options import _tiny  # the same tiny synthetic recipe


def test_divergence_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    from exprsim.training.run import TrainingDivergedError

    out = tmp_path / "r"
    with pytest.raises(TrainingDivergedError, match="diverged") as info:
        train(_tiny(lr=1e6, epochs=3), out, progress=False)  # was: exit 0, NaN weights
    assert "Lower the learning rate" in str(info.value)
    state = torch.load(out / "state.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert not (out / "model.safetensors").exists()  # no model exported


def test_load_model_refuses_nan_weights(tmp_path, random_model_dir):
    from safetensors.torch import load_file, save_file

    from exprsim.models.embedder import load_model

    bad = tmp_path / "bad"
    shutil.copytree(random_model_dir, bad)
    weights = load_file(str(bad / "model.safetensors"))
    name = next(k for k, v in weights.items() if v.is_floating_point())
    weights[name] = torch.full_like(weights[name], float("nan"))
    save_file(weights, str(bad / "model.safetensors"))
    with pytest.raises(ModelError, match="NaN or infinite weights"):
        load_model(str(bad))


def test_a_run_cannot_be_shortened_or_land_on_a_model(tmp_path, random_model_dir):
    out = tmp_path / "r"
    train(_tiny(epochs=2), out, progress=False)
    before = (out / "train_config.json").read_text()
    with pytest.raises(ValueError, match="cannot be shortened"):  # was "trained -1 epochs"
        train(_tiny(epochs=1), out, progress=False)
    assert (out / "train_config.json").read_text() == before
    model_dir = tmp_path / "model"
    shutil.copytree(random_model_dir, model_dir)  # config.json, no train_config.json
    with pytest.raises(ValueError, match="would overwrite it"):
        train(_tiny(), model_dir, progress=False)
    (out / "train_config.json").write_text('{"kind": "pvae-vae"}')
    with pytest.raises(ValueError, match="another kind of run"):
        train(_tiny(epochs=2), out, progress=False)


def test_a_damaged_checkpoint_is_one_clear_error(tmp_path):
    out = tmp_path / "r"
    train(_tiny(epochs=1), out, progress=False)
    data = (out / "state.pt").read_bytes()
    (out / "state.pt").write_bytes(data[: len(data) // 3])
    with pytest.raises(ExprsimError, match="unreadable checkpoint"):
        train(_tiny(epochs=2), out, progress=False)


def test_fer_votes_and_pixels_are_checked():
    import pandas as pd

    from exprsim.data.fer import _parse_pixels, _parse_votes

    good = pd.DataFrame([[1, 2, 0, 0, 0, 0, 0, 0, 0, 0]])
    assert _parse_votes(good, Path("v.csv")).tolist() == [[1, 2, 0, 0, 0, 0, 0, 0, 0, 0]]
    for row in ([0, 0, 0, 0, 0, 0, 0, 0, -1, 0], [1, None, 0, 0, 0, 0, 0, 0, 0, 0]):
        with pytest.raises(DataError, match="missing, negative or out-of-range"):
            _parse_votes(pd.DataFrame([row, good.iloc[0].tolist()]), Path("v.csv"))
    pixels = " ".join(["7"] * 2304)
    assert _parse_pixels([pixels]).shape == (1, 48, 48)
    with pytest.raises(DataError, match=r"outside 0\.\.255"):
        _parse_pixels([pixels, " ".join(["300"] * 2304)])  # was read as 44
    with pytest.raises(DataError, match="row 2 has no pixels"):
        _parse_pixels([pixels, float("nan")])  # was a TypeError traceback


def test_reference_sets_are_npz_files_written_whole(tmp_path):
    from exprsim.apps.classify import ReferenceSet

    ref = ReferenceSet(
        np.eye(16, dtype=np.float32)[:4], np.array([0, 1, 2, 3]), tuple("abcd"), "m@1", 1, {}
    )
    with pytest.raises(ExprsimError, match=r"\.npz"):
        ref.save(tmp_path / "myref")  # was written as myref.npz, reported as myref
    path = ref.save(tmp_path / "ref.npz")
    assert path.is_file() and [p.name for p in tmp_path.iterdir()] == ["ref.npz"]
    assert json.loads(str(np.load(path)["meta"])) == {}


def test_saved_configs_name_their_recipe_and_resume_with_tuples(tmp_path):
    from exprsim.training.registry import config_from_dict
    from exprsim.training.run import RunFolder

    cfg = _tiny(model_kwargs={"widths": (32, 64)})  # a tuple in a free-form dict field
    run = RunFolder(tmp_path / "r")
    run.claim(cfg)
    run.check(cfg)  # was "holds a run with a different config" ([32, 64] != (32, 64))
    saved = json.loads((tmp_path / "r" / "train_config.json").read_text())
    assert saved["recipe"] == "ferplus"
    recipe, again = config_from_dict(saved)  # the saved file is a config `train` takes
    assert recipe.name == "ferplus" and again.model == cfg.model
    saved["recipe"] = "pvae-vae"
    (tmp_path / "r" / "train_config.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match="recipe 'pvae-vae'"):
        run.check(cfg)
