"""Training after the 21st audit: configs that failed only after training (readout angles
without validation faces, a network of other input channels) refused up front; a refused
resume leaves ``train_config.json`` as it was and names a weight-average window that fits;
a checkpoint without its config, or of another network, as one line; ensemble members that
are named twice, unfinished, or spell one data folder two ways; readout angles in [0, 90];
sgm-subspaces runs extended by more levels; the FER folder hint of ``exprsim train``."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from exprsim.errors import DataError, ExprsimError, ModelError
from exprsim.models.embedder import PreprocessConfig
from exprsim.training import ferplus
from exprsim.training.ferplus import train
from exprsim.training.ferplus_config import TrainConfig
from exprsim.training.run import RunFolder, run_lock
from run_folders import export_untrained, tiny_config, tiny_hybrid, tiny_sgm

_cfg, _hybrid = tiny_config, tiny_hybrid


# --------------------------------------------------------------------------- up front


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"val_fraction": 0.0}, "need val_fraction > 0"),  # was: trained, then a traceback
        ({"max_train": 12, "batch_size": 4}, "at least 11 training faces"),  # kNN11: 9 faces
    ],
)
def test_readout_angles_that_cannot_be_scored_are_refused_before_training(
    kw: dict[str, Any], message: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=message):
        train(_hybrid(**kw), tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()  # nothing trained, nothing claimed


@pytest.mark.parametrize("angles", [(0.0, 120.0), (-5.0,)])
def test_readout_angles_outside_0_to_90_are_refused(angles: tuple[float, ...]) -> None:
    from exprsim.training.ensemble import check_angles
    from exprsim.training.ferplus import _check_choices

    with pytest.raises(ValueError, match=r"in \[0, 90\]"):
        _check_choices(_hybrid(readout_angles=angles))
    with pytest.raises(ValueError, match=r"in \[0, 90\]"):
        check_angles(angles)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"model": "fecnet", "model_kwargs": {}}, "takes 3-channel input"),
        ({"preprocess": PreprocessConfig(grayscale=False)}, "takes 1-channel input"),
    ],
)
def test_a_network_of_other_input_channels_is_one_line(
    kw: dict[str, Any], message: str, tmp_path: Path
) -> None:
    with pytest.raises(ModelError, match=message):  # was: a conv traceback in epoch 1
        train(_cfg(**kw), tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()


def test_a_submodule_named_head_is_not_a_classifier_of_its_own() -> None:
    """FECNet keeps a ``head`` submodule (its embedding head), not exprnet_v's
    ``head(x) -> (e, logits)``; it was called as one (a shape traceback on RGB input)."""
    from exprsim.training.ferplus_data import load_data

    rgb = PreprocessConfig(grayscale=False, input_size=112, align_size=112)
    for cfg, own in ((_cfg(model="fecnet", model_kwargs={}, preprocess=rgb), False),
                     (_hybrid(), True)):  # fmt: skip
        tr, va = load_data(cfg)
        assert ferplus._build(cfg, tr, va, None).own_head is own


def test_the_fer_folder_hint_names_what_exprsim_train_reads(tmp_path: Path) -> None:
    from exprsim.training.ferplus_data import load_data

    with pytest.raises(DataError, match="data_dir") as err:  # was: --data-dir only
        load_data(TrainConfig(data="ferplus", data_dir=str(tmp_path)))
    assert "exprsim train" in str(err.value)


# --------------------------------------------------------------------------- resume


def test_a_refused_swa_resume_keeps_the_config_and_names_a_window_that_fits(
    tmp_path: Path,
) -> None:
    from exprsim.training.ferplus import check_resume

    out = tmp_path / "r"
    train(_cfg(epochs=2, swa_epochs=1), out, progress=False)
    before = (out / "train_config.json").read_bytes()
    longer = _cfg(epochs=3, swa_epochs=1)  # the window would move past the snapshot taken
    with pytest.raises(ValueError, match="use swa_epochs=2"):
        train(longer, out, progress=False)
    assert (out / "train_config.json").read_bytes() == before  # was: rewritten (epochs 3)
    assert check_resume(replace(longer, swa_epochs=2), RunFolder(out)) is not None


def test_a_shorter_ensemble_member_leaves_the_ensemble_config_as_it_was(tmp_path: Path) -> None:
    from exprsim.config import to_dict
    from exprsim.training.ensemble import EnsembleTrainConfig, member_configs, train_ensemble

    member = {
        k: v for k, v in to_dict(_hybrid(epochs=2)).items() if k not in ("seed", "split_seed")
    }
    cfg = EnsembleTrainConfig(member=member, seeds=(0, 1), angles=(0.0, 30.0), draws=1)
    out = tmp_path / "ens"
    RunFolder(out).claim(cfg, ("device", "epochs"))
    name, first = member_configs(cfg)[0]
    train(first, out / name, progress=False)  # member a: 2 epochs done
    before = (out / "train_config.json").read_bytes()
    with pytest.raises(ValueError, match="cannot be shortened"):
        train_ensemble(replace(cfg, epochs=1), out, progress=False)
    assert (out / "train_config.json").read_bytes() == before  # was: epochs 1 written


def test_a_checkpoint_without_its_config_is_refused(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "r")
    run.dir.mkdir()
    run.save_state({"epoch": 1})
    with pytest.raises(ValueError, match=r"no train_config\.json"):  # was: resumed under any
        run.check(_cfg())


def test_a_checkpoint_of_another_network_is_one_line_naming_it(tmp_path: Path) -> None:
    from exprsim.config import to_dict

    out = tmp_path / "r"
    train(_cfg(), out, progress=False)
    wider = _cfg(epochs=2, model_kwargs={"widths": [8, 8, 8, 16]})
    (out / "train_config.json").write_text(json.dumps(to_dict(wider)))  # edited by hand
    with pytest.raises(ExprsimError, match=r"state\.pt: a checkpoint of another network"):
        train(wider, out, progress=False)  # was: a load_state_dict traceback


# --------------------------------------------------------------------------- ensemble


def _member(root: Path, name: str, **kw: Any) -> Path:
    """An exported (untrained) hybrid exprnet_v run folder with its train_config.json."""
    return export_untrained(_hybrid(split_seed=0, **kw), root / name, torch_seed=len(name))


def test_a_member_named_twice_is_refused(tmp_path: Path) -> None:
    from exprsim.training.ensemble import load_members

    a = _member(tmp_path, "a")
    with pytest.raises(ValueError, match="named twice"):  # was: a "two-member" ensemble
        load_members([a, tmp_path / "." / "a"])


def test_one_data_folder_spelled_two_ways_is_one_holdout(tmp_path: Path) -> None:
    from exprsim.training.ensemble import _holdout_key

    a = _hybrid(data="ferplus", data_dir=str(tmp_path))
    assert _holdout_key(replace(a, data_dir=f"{tmp_path}/")) == _holdout_key(a)
    assert _holdout_key(replace(a, data_dir=f"{tmp_path}/./")) == _holdout_key(a)
    assert _holdout_key(replace(a, data_dir=f"{tmp_path}/x")) != _holdout_key(a)


def test_members_being_trained_or_extended_are_refused(tmp_path: Path) -> None:
    from exprsim.training.ensemble import load_members

    a, b = _member(tmp_path, "a"), _member(tmp_path, "b", seed=1)
    with run_lock(a), pytest.raises(ValueError, match="is being trained now"):
        load_members([a, b])
    RunFolder(b).claim(_hybrid(split_seed=0, seed=1, epochs=3), ("epochs",))  # extended ...
    RunFolder(b).save_state({"epoch": 1})  # ... and stopped after 1
    with pytest.raises(ValueError, match="extended to 3 epochs but stopped after 1"):
        load_members([a, b])


# --------------------------------------------------------------------------- sgm-subspaces


def test_sgm_subspaces_take_more_levels_and_refuse_fewer(tmp_path: Path) -> None:
    from exprsim.training import train_from_dict

    cfg = tiny_sgm(levels=1, max_train=80)
    train_from_dict(cfg, tmp_path, progress=False)
    res = train_from_dict(cfg, tmp_path, progress=False, length=2)  # was: another config
    assert res.epochs_run == 1  # level 1 resumed as finished, level 2 trained
    assert (tmp_path / "level2" / "model.safetensors").is_file()
    with pytest.raises(ValueError, match="cannot be shortened"):
        train_from_dict(cfg, tmp_path, progress=False)
