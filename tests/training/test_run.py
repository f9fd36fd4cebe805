"""The run folder every learner shares, and the recipe registry behind `exprsim train`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from exprsim.training import RunFolder, config_from_dict, get_recipe, recipes, train_from_dict
from exprsim.training.ferplus_config import TrainConfig


@dataclass(frozen=True)
class _Cfg:
    lr: float = 0.1
    epochs: int = 3


def test_claim_refuses_another_runs_folder_but_allows_declared_changes(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "r")
    run.claim(_Cfg())
    saved = json.loads((tmp_path / "r" / "train_config.json").read_text())
    assert saved == {"lr": 0.1, "epochs": 3}
    RunFolder(tmp_path / "r").claim(_Cfg(epochs=9), may_change=("epochs",))  # longer: fine
    RunFolder(tmp_path / "r").save_state({"epoch": 1})  # something trained there
    with pytest.raises(ValueError, match="different config"):
        RunFolder(tmp_path / "r").claim(_Cfg(lr=0.2), may_change=("epochs",))
    with pytest.raises(ValueError, match="different config"):
        RunFolder(tmp_path / "r").check(_Cfg(epochs=4))  # not declared
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        RunFolder(tmp_path / "f")


def test_a_claimed_folder_without_progress_takes_another_config(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A run that stopped before its first checkpoint (diverged or interrupted in its first
    epoch) left only its claim: a changed config may take the folder, with a warning. Any
    file a run produces (here, in a member's folder) keeps the refusal."""
    run = RunFolder(tmp_path / "r")
    run.claim(_Cfg())
    # epoch 1 logged, then killed before its checkpoint: a resume empties this log
    (tmp_path / "r" / "metrics.jsonl").write_text('{"epoch": 1}\n')
    (tmp_path / "r" / "m0").mkdir()
    RunFolder(tmp_path / "r" / "m0").claim(_Cfg())  # an ensemble's member, claimed only
    with caplog.at_level("WARNING", logger="exprsim.training.run"):
        RunFolder(tmp_path / "r").claim(_Cfg(lr=0.2))
    assert "nothing was trained there" in caplog.text
    saved = json.loads((tmp_path / "r" / "train_config.json").read_text())
    assert saved["lr"] == 0.2
    for produced in ("m0/last.safetensors", "state.pt", "m0/readout.jsonl"):
        folder = tmp_path / produced.replace("/", "_")
        RunFolder(folder).claim(_Cfg())
        (folder / "m0").mkdir()
        (folder / produced).write_text("x")
        with pytest.raises(ValueError, match="different config"):
            RunFolder(folder).claim(_Cfg(lr=0.3))


def test_state_weights_and_metrics(tmp_path: Path) -> None:
    run = RunFolder(tmp_path)
    assert run.load_state() is None
    w = {"a": torch.arange(6.0).reshape(2, 3).t()}  # non-contiguous on purpose
    run.save_state({"model": w, "epoch": 2})
    state = run.load_state()
    assert state is not None and state["epoch"] == 2
    assert torch.equal(state["model"]["a"], w["a"])
    assert not list(tmp_path.glob("*.tmp"))  # written atomically: no leftovers
    from safetensors.torch import load_file

    assert torch.equal(load_file(str(run.save_weights(w)))["a"], w["a"])
    for epoch in (1, 2, 3):
        run.append_metrics({"epoch": epoch, "loss": 1.0 / epoch})
    run.trim_metrics("epoch", 2)  # epoch 3 was logged, then the run died before its checkpoint
    rows = [json.loads(s) for s in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]


def test_registry_lists_every_learner_and_dispatches_configs() -> None:
    assert [r.name for r in recipes()] == ["ensemble", "fec", "ferplus", "pvae", "sgm-subspaces"]
    for r in recipes():
        assert r.description and callable(r.train_function())
        assert r.length_field in {f for f in r.config_class().__dataclass_fields__}
    recipe, cfg = config_from_dict({"epochs": 2})  # no recipe: the FER+ vote learner
    assert recipe.name == "ferplus" and isinstance(cfg, TrainConfig) and cfg.epochs == 2
    recipe, cfg = config_from_dict({"kind": "pvae", "iterations": 5})  # the older key
    assert recipe.name == "pvae" and cfg.iterations == 5
    recipe, cfg = config_from_dict({"recipe": "fec", "iterations": 5})
    assert recipe.name == "fec" and cfg.kind == "fec"
    with pytest.raises(ValueError, match="must be a string"):
        config_from_dict({"kind": 7})  # never falls back to training the default recipe
    with pytest.raises(ValueError, match="unknown recipe 'nope'"):
        config_from_dict({"recipe": "nope"})
    with pytest.raises(ValueError, match="unknown config keys"):
        config_from_dict({"recipe": "ferplus", "epochz": 3})
    assert get_recipe("sgm-subspaces").config_class().__name__ == "SubspaceTrainConfig"


#: A tiny synthetic ferplus run, as a config file would hold it.
TINY_RAW = {
    "data": "synthetic", "max_train": 64, "val_fraction": 0.25, "epochs": 5,
    "batch_size": 16, "triplet_weight": 0.0, "num_threads": 1, "augment": False,
    "model_kwargs": {"widths": [8, 8, 8, 8]},
}  # fmt: skip


def test_train_from_dict_overrides_the_length(tmp_path: Path) -> None:
    raw = dict(TINY_RAW)
    res = train_from_dict(raw, tmp_path, progress=False, length=1)
    assert res.epochs_run == 1
    rows = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(s)["epoch"] for s in rows] == [1]
    assert np.isfinite(json.loads(rows[0])["loss"])


def test_pvae_run_resumed_from_its_checkpoint_equals_an_uninterrupted_one(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from exprsim.training.pvae import PVAETrainConfig, train_pvae

    def cfg(iterations: int) -> PVAETrainConfig:
        return PVAETrainConfig(
            model="pvae-m2", data="synthetic", max_train=120, iterations=iterations,
            eval_every=4, batch_size=16, anneal_iterations=8, threads=1,
        )  # fmt: skip

    train_pvae(cfg(8), tmp_path / "a", progress=False)
    first = train_pvae(cfg(4), tmp_path / "b", progress=False)  # stops at the checkpoint
    second = train_pvae(cfg(8), tmp_path / "b", progress=False)  # goes on from it
    assert (first.iterations_run, second.iterations_run) == (4, 4)
    a = load_file(str(tmp_path / "a" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    hist = json.loads((tmp_path / "b" / "history.json").read_text())
    assert [h["iteration"] for h in hist] == [4, 8]


def test_train_from_dict_sets_the_device_where_the_recipe_has_one(tmp_path: Path) -> None:
    raw = {**TINY_RAW, "epochs": 1}
    train_from_dict(raw, tmp_path / "a", progress=False, device="cpu")
    saved = json.loads((tmp_path / "a" / "train_config.json").read_text())
    assert saved["device"] == "cpu"
    with pytest.raises(ValueError, match="CPU only"):
        train_from_dict({"recipe": "pvae"}, tmp_path / "b", progress=False, device="cuda")
    assert not (tmp_path / "b").exists()


def test_cli_train_on_a_missing_gpu_is_one_line(tmp_path: Path, capsys) -> None:
    import torch

    from exprsim.cli import main

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"data": "synthetic", "max_train": 64, "epochs": 1}))
    rc = main(
        ["-q", "train", "--config", str(cfg), "--out", str(tmp_path / "r"), "--device", "cuda"]
    )
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "CUDA" in err
    assert not (tmp_path / "r").exists()


def test_every_shipped_config_file_is_a_valid_training_config() -> None:
    """A broken file under configs/ fails here, not an hour into someone's run."""
    from exprsim.training.ensemble import EnsembleTrainConfig, member_configs

    root = Path(__file__).resolve().parents[2] / "configs"
    files = sorted(root.glob("*.json"))
    assert len(files) >= 20  # the folder is found
    seen = set()
    for path in files:
        recipe, cfg = config_from_dict(json.loads(path.read_text()))
        seen.add(recipe.name)
        if isinstance(cfg, EnsembleTrainConfig):
            assert len(member_configs(cfg)) == len(cfg.seeds) >= 2, path.name
    assert {"ensemble", "fec", "ferplus", "pvae"} <= seen
