"""Round 29: what round 28's training audit found (docs/robustness.md, "twenty-ninth round")."""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
from dataclasses import replace
from pathlib import Path

import pytest

from exprsim.errors import DataError, ExprsimError, ModelError
from exprsim.training.ferplus import _check_choices, train
from exprsim.training.ferplus_config import MAX_BATCH, TrainConfig

CFG = TrainConfig(
    data="synthetic",
    max_train=128,
    val_fraction=0.25,
    epochs=1,
    batch_size=32,
    triplets_per_type=4,
    num_threads=1,
)

#: a process id no process has here (above Linux's pid_max, 2**22)
DEAD_PID = 2**22 + 17


# -- settings without a range ------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"sampler": "balanced", "per_class": 100_000}, "per_class must be in"),
        ({"per_class": 0}, "per_class must be in"),
        ({"batch_size": MAX_BATCH + 1}, "batch_size must be in"),
        ({"momentum": 0.0}, "momentum must be in"),
        ({"momentum": 1.5}, "momentum must be in"),
        ({"momentum": math.nan}, "momentum must be in"),
        ({"kl_weight": -1.0}, "kl_weight must be >= 0"),
        ({"kl_weight": math.nan}, "kl_weight must be >= 0"),
        ({"triplet_weight": -0.5}, "triplet_weight must be >= 0"),
        ({"pair_weight": -0.5}, "pair_weight must be >= 0"),
        ({"margins": (0.1, math.nan, 0.2)}, "margins must be three finite"),
        ({"margins": (0.1, -0.2, 0.2)}, "margins must be three finite"),
        ({"classifier_scale": 0.0}, "classifier_scale must be > 0"),
        ({"classifier_scale": math.inf}, "classifier_scale must be > 0"),
        ({"warmup_epochs": math.inf}, "warmup_epochs must be finite and >= 0"),
        ({"warmup_epochs": -1.0}, "warmup_epochs must be finite"),
        ({"num_threads": -1}, "num_threads must be in"),
        ({"num_threads": 5000}, "num_threads must be in"),
        ({"sgm_sigma": 0.0}, "sgm_sigma must be > 0"),
        ({"teacher_pair_angle": 120.0}, "teacher_pair_angle must be in"),
        ({"swa_epochs": 3}, "a shorter --epochs needs a config with fewer swa_epochs"),
    ],
)
def test_settings_out_of_range_are_refused_before_anything_is_written(
    tmp_path: Path, changes: dict, match: str
) -> None:
    cfg = replace(CFG, **changes)
    with pytest.raises(ValueError, match=match):
        _check_choices(cfg)
    with pytest.raises(ValueError, match=match):
        train(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "changes",
    [
        {"optimizer": "adam", "momentum": 0.0},  # momentum is SGD's only
        {"sampler": "balanced", "per_class": MAX_BATCH // 8},
        {"batch_size": MAX_BATCH},
        {"warmup_epochs": 1.1, "swa_epochs": 1},  # a smoke run's --epochs 1, warm-up 1.1
        {"margins": (0.0, 0.0, 0.0), "kl_weight": 0.0, "teacher_pair_angle": 90.0},
    ],
)
def test_settings_at_their_bounds_are_taken(changes: dict) -> None:
    _check_choices(replace(CFG, **changes))  # guard: no new refusal of what worked


# -- resuming ------------------------------------------------------------------------------


def test_a_run_resumes_without_its_init_from_folder(tmp_path: Path) -> None:
    """The checkpoint's weights replace ``init_from``'s on a resume: a run whose starting
    weights were moved or deleted could not be resumed."""
    base = tmp_path / "base"
    train(CFG, base, progress=False)
    run = tmp_path / "run"
    cfg = replace(CFG, init_from=str(base))
    train(cfg, run, progress=False)
    for f in base.iterdir():
        f.unlink()
    base.rmdir()
    assert train(replace(cfg, epochs=2), run, progress=False).epochs_run == 1
    with pytest.raises(ValueError, match=r"init_from .*no model\.safetensors"):  # a fresh run
        train(replace(cfg, epochs=2), tmp_path / "fresh", progress=False)


def test_a_relative_init_from_says_where_it_was_looked_for(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="relative to the working folder: ") as err:
        train(replace(CFG, init_from="runs/gone"), tmp_path / "run", progress=False)
    assert str(tmp_path / "runs" / "gone") in str(err.value)


def test_a_committed_run_without_weights_warns_before_its_metrics_go(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = tmp_path / "run"
    train(replace(CFG, epochs=2), run, progress=False)
    kept = {"train_config.json", "metrics.jsonl"}  # what a committed run without weights has
    for f in run.iterdir():
        if f.name not in kept and f.is_file():
            f.unlink()
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    with caplog.at_level(logging.WARNING, logger="exprsim.training.run"):
        train(replace(CFG, epochs=2), run, progress=False)
    said = [r.getMessage() for r in caplog.records if "rows of metrics" in r.getMessage()]
    assert len(said) == 1 and "holds 2 rows of metrics but no checkpoint" in said[0]


def test_a_first_epoch_killed_before_its_checkpoint_is_not_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = tmp_path / "run"
    train(CFG, run, progress=False)
    for f in run.iterdir():  # as a kill between the first row and the first checkpoint
        if f.name not in ("train_config.json", "metrics.jsonl") and f.is_file():
            f.unlink()
    with caplog.at_level(logging.WARNING, logger="exprsim.training.run"):
        train(CFG, run, progress=False)
    assert not any("rows of metrics" in r.getMessage() for r in caplog.records)


def test_a_temporary_left_by_a_kill_is_no_progress(tmp_path: Path) -> None:
    """A kill while the first checkpoint was written left ``.state.pt.<pid>.<n>.tmp``; it
    counted as progress, so the corrected config was refused as "a different config"."""
    run = tmp_path / "run"
    train(CFG, run, progress=False)
    for f in run.iterdir():
        if f.name != "train_config.json" and f.is_file():
            f.unlink()
    left = run / f".state.pt.{DEAD_PID}.1.tmp"
    left.write_bytes(b"half a checkpoint")
    train(replace(CFG, lr=0.01), run, progress=False)  # was: "a different config"
    assert not left.exists()  # swept when the run claimed the folder
    assert json.loads((run / "train_config.json").read_text())["lr"] == 0.01


def test_a_different_config_is_named(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(CFG, run, progress=False)
    with pytest.raises(ValueError, match=r"different config \(lr 0.05 -> 0.1\)"):
        train(replace(CFG, lr=0.1), run, progress=False)
    aug = replace(CFG.augmentation, flip_p=0.25)
    with pytest.raises(ValueError, match=r"augmentation\.flip_p 0\.5 -> 0\.25"):
        train(replace(CFG, augmentation=aug), run, progress=False)


class _NotWeights:
    pass


@pytest.mark.parametrize("how", ["cut", "pickle"])
def test_a_damaged_checkpoint_is_said_in_one_short_line(tmp_path: Path, how: str) -> None:
    run = tmp_path / "run"
    train(CFG, run, progress=False)
    state = run / "state.pt"
    if how == "cut":
        state.write_bytes(state.read_bytes()[:1000])
    else:  # a pickle weights_only refuses: torch explains it at length
        import torch

        torch.save({"epoch": 1, "x": _NotWeights()}, state)
    with pytest.raises(ExprsimError, match="unreadable checkpoint") as err:
        train(replace(CFG, epochs=2), run, progress=False)
    text = str(err.value)
    assert "\n" not in text and len(text) < 200 + len(str(state)) + 150


# -- messages ------------------------------------------------------------------------------


def test_a_missing_teacher_file_is_named(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=r"gone\.npz: no such file") as err:
        train(replace(CFG, teacher="gone.npz"), tmp_path / "run", progress=False)
    assert f"relative to {tmp_path}" in str(err.value)
    assert not (tmp_path / "run").exists()


def test_a_missing_data_folder_is_named(tmp_path: Path) -> None:
    from exprsim.data.fer import load_ferplus

    with pytest.raises(DataError, match="no such folder"):
        load_ferplus("Training", tmp_path / "gone")


def test_a_finished_sgm_subspaces_run_names_its_level_models(tmp_path: Path) -> None:
    from exprsim.models.embedder import check_model_files, load_model

    run = tmp_path / "sgm"
    run.mkdir()
    (run / "train_config.json").write_text('{"recipe": "sgm-subspaces"}')
    (run / "subspaces.json").write_text("{}")
    for n in (1, 2, 10):
        (run / f"level{n}").mkdir()
        (run / f"level{n}" / "config.json").write_text("{}")
    (run / "levelx").mkdir()
    with pytest.raises(ModelError, match=r"sgm-subspaces run.*level1, level2, level10\)") as e:
        check_model_files(run)
    assert str(run / "level10") in str(e.value)
    with pytest.raises(ModelError, match="sgm-subspaces run"):
        load_model(str(run))


def test_a_run_not_exported_is_still_said_so(tmp_path: Path) -> None:
    from exprsim.models.embedder import check_model_files

    (tmp_path / "train_config.json").write_text("{}")
    with pytest.raises(ModelError, match="a training run not exported yet"):
        check_model_files(tmp_path)  # guard


def test_dead_pid_is_dead() -> None:
    from exprsim.io import pid_alive

    assert not pid_alive(DEAD_PID) and pid_alive(os.getpid())
    assert pickle.dumps(_NotWeights())  # the class the damaged checkpoint holds pickles


# -- the prechecks of ensembles and SGM levels follow the resume ----------------------------


def test_an_ensembles_precheck_needs_init_from_only_before_its_members_started(
    tmp_path: Path,
) -> None:
    from exprsim.config import to_dict
    from exprsim.training.ensemble import EnsembleTrainConfig, member_configs
    from run_folders import tiny_hybrid

    member = to_dict(tiny_hybrid(init_from=str(tmp_path / "gone")))
    member = {k: v for k, v in member.items() if k not in ("seed", "split_seed")}
    cfg = EnsembleTrainConfig(member=member, seeds=(0, 1))
    out = tmp_path / "ens"
    with pytest.raises(ValueError, match="init_from"):
        member_configs(cfg, out)  # no member started: its starting weights must be there
    (out / "a").mkdir(parents=True)
    (out / "a" / "state.pt").write_bytes(b"x")
    with pytest.raises(ValueError, match="init_from"):
        member_configs(cfg, out)  # member b still starts from them
    (out / "b").mkdir()
    (out / "b" / "state.pt").write_bytes(b"x")
    assert [n for n, _ in member_configs(cfg, out)] == ["a", "b"]  # both resume


def test_sgm_levels_precheck_needs_init_from_only_before_level1_started(tmp_path: Path) -> None:
    from exprsim.training.sgm import ferplus_sgm_trainer

    base = TrainConfig(
        data="synthetic", max_train=160, val_fraction=0.25, epochs=1, batch_size=32,
        objective="sgm", sampler="balanced", per_class=4, optimizer="adam", lr=1e-3,
        augment=False, num_threads=1, init_from=str(tmp_path / "gone"),
    )  # fmt: skip
    root = tmp_path / "sgm"
    with pytest.raises(ValueError, match="init_from"):
        ferplus_sgm_trainer(base, root, progress=False)
    (root / "level1").mkdir(parents=True)
    (root / "level1" / "state.pt").write_bytes(b"x")
    _fn, majority = ferplus_sgm_trainer(base, root, progress=False)
    assert len(majority) > 0


def test_config_differences_names_keys_set_in_an_empty_dict() -> None:
    """The review of round 29: ``model_kwargs`` ``{}`` against ``{"width": 2}`` read
    "model_kwargs {} -> '<unset>', model_kwargs.width '<unset>' -> 2"."""
    from exprsim.training.run import config_differences

    wide = replace(CFG, model_kwargs={"width": 2})
    assert config_differences(CFG, wide) == "model_kwargs.width '<unset>' -> 2"
    assert config_differences(wide, CFG) == "model_kwargs.width 2 -> '<unset>'"
    assert config_differences(CFG, CFG) == ""
