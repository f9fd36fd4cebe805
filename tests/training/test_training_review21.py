"""Training after the review of round 21: ``model_kwargs.in_channels`` counts; readout
angles refused with val_fraction 0 only for networks that read them out; a foreign
checkpoint refused before ``train_config.json`` is rewritten, naming the key and both
shapes; an ensemble recipe's members may take the weight-average window their advice
names; ``compose_ensemble`` refuses another model's folder; the warnings of
``unfinished_export`` (a run stopped on its time budget, an ensemble of unfinished members,
a run never exported); ``run_lock`` waits out a probe's momentary lock."""

from __future__ import annotations

import fcntl
import json
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from exprsim.errors import ExprsimError, ModelError
from exprsim.models.embedder import PreprocessConfig
from exprsim.training.ferplus import train
from exprsim.training.run import RunFolder, run_lock, unfinished_export
from run_folders import export_untrained, tiny_config, tiny_hybrid

_cfg, _hybrid = tiny_config, tiny_hybrid


# --------------------------------------------------------------------------- finding 1


def test_model_kwargs_in_channels_is_the_network_s_input(tmp_path: Path) -> None:
    rgb = PreprocessConfig(grayscale=False)
    kwargs = {"widths": [8, 8, 8, 8], "in_channels": 3}
    train(_cfg(model_kwargs=kwargs, preprocess=rgb), tmp_path / "rgb", progress=False)
    assert (tmp_path / "rgb" / "model.safetensors").is_file()  # was: refused (1-channel)
    with pytest.raises(ModelError, match=r"takes 3-channel input \(model_kwargs\.in_channels\)"):
        train(_cfg(model_kwargs=kwargs), tmp_path / "gray", progress=False)
    assert not (tmp_path / "gray").exists()  # was: a conv traceback in epoch 1


# --------------------------------------------------------------------------- finding 7


def test_readout_angles_with_val_fraction_0_train_a_network_that_ignores_them(
    tmp_path: Path,
) -> None:
    cfg = _cfg(readout_angles=(0.0, 45.0), val_fraction=0.0)  # exprnet_s: no hybrid readout
    train(cfg, tmp_path / "s", progress=False)  # was: refused
    assert (tmp_path / "s" / "model.safetensors").is_file()


def test_no_validation_faces_still_refused_for_hybrid_nets_and_ensembles(
    tmp_path: Path,
) -> None:
    from exprsim.config import to_dict
    from exprsim.training.ensemble import EnsembleTrainConfig, member_configs

    with pytest.raises(ValueError, match=r"need val_fraction > 0"):  # guard: as before
        train(_hybrid(val_fraction=0.0), tmp_path / "v", progress=False)
    assert not (tmp_path / "v").exists()
    member = to_dict(_hybrid(val_fraction=0.0, readout_angles=()))
    with pytest.raises(ValueError, match=r"val_fraction > 0"):  # was: refused only after
        # training, by composing (the readout is chosen on validation faces)
        member_configs(EnsembleTrainConfig(member=member, seeds=(0, 1)))


# --------------------------------------------------------------------------- finding 9


def test_a_foreign_checkpoint_is_refused_before_the_config_is_rewritten(tmp_path: Path) -> None:
    from exprsim.config import to_dict

    out = tmp_path / "r"
    train(_cfg(), out, progress=False)
    wider = _cfg(model_kwargs={"widths": [8, 8, 8, 16]})
    (out / "train_config.json").write_text(json.dumps(to_dict(wider)))  # edited by hand
    before = (out / "train_config.json").read_bytes()
    with pytest.raises(ExprsimError, match=r"state\.pt: a checkpoint of another network") as e:
        train(replace(wider, epochs=2), out, progress=False)
    assert (out / "train_config.json").read_bytes() == before  # was: rewritten (epochs 2)
    assert "in the checkpoint, [16" in str(e.value) and "torch.Size([" not in str(e.value)


def test_check_weights_names_a_missing_or_an_extra_key(tmp_path: Path) -> None:
    from exprsim.training.run import check_weights

    net = torch.nn.Linear(2, 3)
    saved = dict(net.state_dict())
    check_weights(tmp_path, saved, net)  # guard: its own weights
    check_weights(tmp_path, None, net)  # guard: no weights to judge
    with pytest.raises(ExprsimError, match=r"bias is not in the checkpoint"):
        check_weights(tmp_path, {"weight": saved["weight"]}, net)
    with pytest.raises(ExprsimError, match=r"holds extra, which this config's network has not"):
        check_weights(tmp_path, {**saved, "extra": saved["bias"]}, net)


def _pvae(**kw: Any) -> dict[str, Any]:
    return {
        "kind": "pvae", "model": "pvae-vae", "data": "synthetic", "latent_dim": 4,
        "iterations": 10, "batch_size": 20, "eval_every": 5, "anneal_iterations": 10,
        "max_train": 100, **kw,
    }  # fmt: skip


def test_a_foreign_pvae_checkpoint_is_refused_before_the_config_is_rewritten(
    tmp_path: Path,
) -> None:
    from exprsim.training import train_from_dict

    train_from_dict(_pvae(iterations=5), tmp_path, progress=False)
    saved = json.loads((tmp_path / "train_config.json").read_text())
    (tmp_path / "train_config.json").write_text(json.dumps({**saved, "latent_dim": 6}))
    before = (tmp_path / "train_config.json").read_bytes()
    with pytest.raises(ExprsimError, match=r"is \[8, 90\] in the checkpoint, \[12, 90\] in this"):
        train_from_dict(_pvae(latent_dim=6), tmp_path, progress=False)
    assert (tmp_path / "train_config.json").read_bytes() == before  # was: iterations 10


# --------------------------------------------------------------------------- finding 4


def test_an_ensemble_member_takes_the_swa_window_its_advice_names(tmp_path: Path) -> None:
    from exprsim.config import to_dict
    from exprsim.training.ensemble import EnsembleTrainConfig, member_configs, train_ensemble

    member = {
        k: v
        for k, v in to_dict(_hybrid(epochs=2, swa_epochs=1)).items()
        if k not in ("seed", "split_seed")
    }
    cfg = EnsembleTrainConfig(member=member, seeds=(0, 1), angles=(0.0, 30.0), draws=1)
    out = tmp_path / "ens"
    RunFolder(out).claim(cfg, ("device", "epochs"))
    name, first = member_configs(cfg)[0]
    train(first, out / name, progress=False)  # member a: 2 epochs, 1 averaged
    with pytest.raises(ValueError, match="use swa_epochs=2"):  # the advice ...
        train_ensemble(replace(cfg, epochs=3), out, progress=False)
    advised = replace(cfg, epochs=3, member={**member, "swa_epochs": 2})
    res = train_ensemble(advised, out, progress=False)  # ... followed (was: another config)
    assert res.epochs_run == 1 + 3
    assert json.loads((out / "train_config.json").read_text())["member"]["swa_epochs"] == 2
    with pytest.raises(ValueError, match="different config"):  # guard: other member fields
        train_ensemble(replace(advised, member={**advised.member, "lr": 0.5}), out)


# --------------------------------------------------------------------------- finding 11d


def _member(root: Path, name: str, **kw: Any) -> Path:
    """An exported (untrained) hybrid exprnet_v run folder with its train_config.json."""
    return export_untrained(_hybrid(split_seed=0, **kw), root / name, torch_seed=len(name))


def test_compose_ensemble_refuses_a_folder_holding_another_model(tmp_path: Path) -> None:
    from exprsim.training.ensemble import compose_ensemble

    a, b, c = (_member(tmp_path, n, seed=i) for i, n in enumerate("abc"))
    before = (c / "model.safetensors").read_bytes()
    with pytest.raises(ValueError, match="holds another model"):  # was: overwritten
        compose_ensemble([a, b], c, angles=(0.0,), draws=1)
    assert (c / "model.safetensors").read_bytes() == before
    with pytest.raises(ValueError, match="is one of the members"):
        compose_ensemble([a, b], b, angles=(0.0,), draws=1)


def test_an_ensemble_s_own_folder_is_composed_again(tmp_path: Path) -> None:
    """An export without ``ensemble.json`` (a composition killed before it) is still an
    ensemble's when its config names ``exprnet_ens`` or its folder is an ensemble recipe's."""
    from exprsim.training.ensemble import check_out

    for name, text in (("config.json", '{"model": "exprnet_ens"}'),
                       ("train_config.json", '{"recipe": "ensemble"}')):  # fmt: skip
        out = tmp_path / name
        out.mkdir()
        (out / "model.safetensors").write_bytes(b"composed")
        (out / name).write_text(text)
        check_out(out, [tmp_path / "a", tmp_path / "b"])
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "config.json").write_text('{"model": "exprnet_s"}')
    with pytest.raises(ValueError, match="holds another model"):
        check_out(tmp_path / "x", [tmp_path / "a", tmp_path / "b"])


# --------------------------------------------------------------------------- 3, 8, 10


def test_a_pvae_run_stopped_on_its_time_budget_is_finished(tmp_path: Path) -> None:
    from exprsim.training import train_from_dict

    res = train_from_dict(_pvae(iterations=200, max_seconds=0), tmp_path, progress=False)
    assert res.iterations_run == 5  # stopped at the first validation
    assert unfinished_export(tmp_path) is None  # was: "extended to 200 ... stopped after 5"
    # guard: a later call killed after its checkpoint (at 10; its history still ends at 5;
    # the rule was result.json older than state.pt, which a clock set back also made so)
    RunFolder(tmp_path).save_state({"iteration": 10})
    assert "stopped after 10" in (unfinished_export(tmp_path) or "")


def test_an_ensemble_recipe_is_judged_by_its_members(tmp_path: Path) -> None:
    from exprsim.training.ensemble import EnsembleTrainConfig

    member = {"model": "exprnet_v", "model_kwargs": {"readout": "hybrid"}, "epochs": 3}
    RunFolder(tmp_path).claim(EnsembleTrainConfig(member=member))
    (tmp_path / "model.safetensors").write_bytes(b"composed at 2 epochs")
    for name in "ab":
        RunFolder(tmp_path / name).dir.mkdir()
        RunFolder(tmp_path / name).save_state({"epoch": 3 if name == "a" else 2})
    words = unfinished_export(tmp_path) or ""  # was: None (no state.pt at the top)
    assert "member b after 2 of 3 epochs" in words and "shorter members" in words
    RunFolder(tmp_path / "b").save_state({"epoch": 3})
    assert unfinished_export(tmp_path) is None  # guard: every member finished


def test_a_run_never_exported_is_not_called_extended(tmp_path: Path) -> None:
    RunFolder(tmp_path).claim(_cfg(epochs=20))
    RunFolder(tmp_path).save_state({"epoch": 1})  # killed in epoch 2 of 20
    words = unfinished_export(tmp_path) or ""
    assert "stopped after 1 of 20 epochs and is not exported yet" in words
    assert "extended" not in words  # was: "was extended to 20 epochs ..."


# --------------------------------------------------------------------------- finding 11a


def test_run_lock_waits_out_a_probe_s_momentary_shared_lock(tmp_path: Path) -> None:
    (tmp_path / ".lock").write_bytes(b"")
    probe = open(tmp_path / ".lock", "rb")  # noqa: SIM115 - released by the timer
    fcntl.flock(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)  # as unfinished_export's probe does
    timer = threading.Timer(0.2, probe.close)
    timer.start()
    try:
        with run_lock(tmp_path):  # was: "another exprsim train is using"
            pass
    finally:
        timer.join()


def test_guard_run_lock_refuses_a_lock_held_on(tmp_path: Path) -> None:
    busy = pytest.raises(ExprsimError, match="another exprsim train")
    with run_lock(tmp_path), busy, run_lock(tmp_path):  # after waiting LOCK_WAIT_S
        pass
