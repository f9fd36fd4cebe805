"""A command killed while it writes a model (after a run's last checkpoint, or between
``model.safetensors`` and ``config.json``) leaves a mark: the folder no longer looks
finished, ``load_model`` refuses it in one line, and running the command again finishes it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from exprsim.errors import ModelError
from exprsim.io import WRITING_MODEL_MARK, model_being_written, writing_model
from exprsim.models.embedder import load_model
from exprsim.training import ferplus, run
from exprsim.training.ferplus import train
from exprsim.training.run import unfinished_export
from run_folders import export_untrained, tiny_config


def test_the_mark_stays_when_the_block_fails_and_goes_when_it_ends(tmp_path: Path) -> None:
    with writing_model(tmp_path):
        assert model_being_written(tmp_path)
    assert not model_being_written(tmp_path)
    with pytest.raises(KeyboardInterrupt), writing_model(tmp_path):
        raise KeyboardInterrupt
    assert (tmp_path / WRITING_MODEL_MARK).is_file()


def _interrupt(*_: Any, **__: Any) -> None:
    raise KeyboardInterrupt  # as Ctrl-C or a kill between the last checkpoint and the export


def test_an_extension_killed_before_its_export_does_not_look_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "run"
    train(tiny_config(), folder, progress=False)
    assert unfinished_export(folder) is None
    longer = tiny_config(epochs=2)
    with monkeypatch.context() as m:
        m.setattr(ferplus, "export", _interrupt)
        with pytest.raises(KeyboardInterrupt):
            train(longer, folder, progress=False)
    # the checkpoint is the 2-epoch run's, model.safetensors still the 1-epoch run's
    assert torch.load(folder / "state.pt", weights_only=True)["epoch"] == 2
    words = unfinished_export(folder)
    assert words is not None and "while its model was being written" in words  # was: None
    with pytest.raises(ModelError, match="stopped before it finished"):
        load_model(str(folder))  # was: the 1-epoch model, silently
    train(longer, folder, progress=False)  # the same command again finishes it
    assert not model_being_written(folder)
    assert unfinished_export(folder) is None
    state = torch.load(folder / "state.pt", weights_only=True)["model"]
    exported = load_file(str(folder / "model.safetensors"))
    assert exported.keys() == state.keys()
    assert all(torch.equal(exported[k], state[k]) for k in state)
    load_model(str(folder))


def test_a_kill_between_the_two_model_files_is_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tiny_config()
    folder = export_untrained(cfg, tmp_path / "model")
    load_model(str(folder))
    calls = []
    real = run.write_or_explain

    def second_fails(path: Path, *args: Any) -> Path:
        calls.append(path.name)
        if len(calls) == 2:  # model.safetensors written, config.json not
            raise KeyboardInterrupt
        return real(path, *args)

    net = load_model(str(folder), fuse=False).model
    with monkeypatch.context() as m:
        m.setattr(run, "write_or_explain", second_fails)
        with pytest.raises(KeyboardInterrupt):
            ferplus.export(net, replace(cfg, version="9"), folder)
    assert calls == ["model.safetensors", "config.json"]
    with pytest.raises(ModelError, match=WRITING_MODEL_MARK):
        load_model(str(folder))
    ferplus.export(net, replace(cfg, version="9"), folder)  # written again: whole
    assert load_model(str(folder)).config.version == "9"


def test_a_composed_folder_with_the_mark_names_no_training(tmp_path: Path) -> None:
    (tmp_path / WRITING_MODEL_MARK).write_text("")
    words = unfinished_export(tmp_path)
    assert words is not None and "the command that wrote it" in words
    assert "exprsim train" not in words


def test_a_perceptual_vae_run_killed_while_saving_its_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from exprsim.pvae.codes import load_pvae
    from exprsim.training.pvae import PVAETrainConfig, train_pvae

    cfg = PVAETrainConfig(
        model="pvae-vae", data="synthetic", max_train=300, iterations=4, batch_size=32,
        eval_every=4, latent_dim=4, encoder_hidden=(16,), decoder_hidden=(16,),
        anneal_iterations=4,
    )  # fmt: skip
    folder = tmp_path / "vae"
    with monkeypatch.context() as m:
        m.setattr(run.RunFolder, "save_weights", _interrupt)
        with pytest.raises(KeyboardInterrupt):
            train_pvae(cfg, folder, progress=False)
    (folder / "model.safetensors").write_bytes(b"")  # stand-in: an earlier run's weights
    words = unfinished_export(folder)
    assert words is not None and "exprsim train" in words
    with pytest.raises(ModelError, match="stopped before it finished"):
        load_pvae(folder, feature_dim=None)
    train_pvae(cfg, folder, progress=False)  # finishes from its checkpoint
    assert not model_being_written(folder)
    load_pvae(folder, feature_dim=None)


def test_init_from_a_folder_whose_export_stopped_is_refused(tmp_path: Path) -> None:
    first = export_untrained(tiny_config(), tmp_path / "first")
    (first / WRITING_MODEL_MARK).write_text("")
    with pytest.raises(ValueError, match="stopped before it finished"):
        train(tiny_config(init_from=str(first)), tmp_path / "second", progress=False)
    assert not (tmp_path / "second").exists()  # refused before anything is written
