"""Round 35 (a model folder from somebody else): a config is checked against its weights
file before the network is built; integer weights, settings that overflow, deep or huge
configs and a folder named as the shipped model are refused or named."""

from __future__ import annotations

import logging
import time
import tracemalloc
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from exprsim.errors import ModelError
from exprsim.models.embedder import load_model
from model_folders import copy_model, edit_config


def _rename(cfg: dict) -> None:
    cfg["version"] = "r35-test"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"stages": [[8192] * 50]},  # about 120 GB of network: 2.6 GB and 7 s before
        {"embedding_dim": 10**9},
    ],
    ids=["wide-stages", "huge-embedding"],
)
def test_a_config_that_does_not_fit_its_weights_builds_nothing(tmp_path: Path, kwargs) -> None:
    folder = copy_model(tmp_path)

    def change(cfg: dict) -> None:
        _rename(cfg)
        if "embedding_dim" in kwargs:
            cfg["embedding_dim"] = kwargs["embedding_dim"]
        else:
            cfg["model_kwargs"]["members"][0]["stages"] = kwargs["stages"]

    edit_config(folder, change)
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(ModelError, match=r"weights do not fit|cannot build"):
            load_model(str(folder))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 200 * 2**20 and time.perf_counter() - t0 < 60


def test_integer_weights_are_refused(tmp_path: Path) -> None:
    folder = copy_model(tmp_path)
    edit_config(folder, _rename)
    state = load_file(str(folder / "model.safetensors"))
    key = next(k for k, v in state.items() if v.is_floating_point() and v.ndim == 4)
    state[key] = state[key].to(dtype=__import__("torch").int8)
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(ModelError, match="not floating-point numbers"):
        load_model(str(folder))


def test_a_setting_that_overflows_is_refused(tmp_path: Path) -> None:
    folder = copy_model(tmp_path)

    def change(cfg: dict) -> None:
        _rename(cfg)
        for member in cfg["model_kwargs"]["members"]:
            member["classifier_scale"] = 1e300

    edit_config(folder, change)
    with pytest.raises(ModelError, match="not finite numbers"):
        load_model(str(folder))


@pytest.mark.parametrize("text", ["[" * 5000 + "]" * 5000, " " * (2 << 20) + "{}"])
def test_deep_or_huge_configs_are_one_line(tmp_path: Path, text: str) -> None:
    folder = copy_model(tmp_path)
    (folder / "config.json").write_text(text)
    with pytest.raises(ModelError, match=r"not a readable JSON model config|not a model config"):
        load_model(str(folder))


def test_a_folder_named_as_the_shipped_model_with_other_weights_is_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    same = copy_model(tmp_path, "same")
    with caplog.at_level(logging.WARNING):
        load_model(str(same))  # a copy of the shipped folder: the same weights
    assert "with other weights" not in caplog.text
    other = copy_model(tmp_path, "other")
    state = load_file(str(other / "model.safetensors"))
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key] = state[key] * 1.01
    save_file(state, str(other / "model.safetensors"))
    with caplog.at_level(logging.WARNING):
        load_model(str(other))
    assert "as the shipped model 'default', with other weights or settings" in caplog.text


def test_every_registered_network_builds_on_the_meta_device() -> None:
    """What `load_model` checks a config with, before a byte of it is allocated."""
    import torch

    from exprsim.models.registry import create_model, list_models

    for name in list_models():
        with torch.device("meta"):
            net = create_model(name, embedding_dim=16)
        assert all(p.is_meta for p in net.parameters()), name


def test_fifos_in_a_model_folder_are_not_waited_on(tmp_path: Path) -> None:
    """A FIFO as `.lock` hung `evaluate --model` and `ensemble`; as `model.safetensors`,
    `tag calibrate --save`; as `config.json`, every reader."""
    import os
    import subprocess
    import sys

    from exprsim.models.embedder import model_identity
    from exprsim.training.run import unfinished_export

    locked = copy_model(tmp_path, "locked")
    os.mkfifo(locked / ".lock")
    weights = copy_model(tmp_path, "weights")
    (weights / "model.safetensors").unlink()
    os.mkfifo(weights / "model.safetensors")
    config = copy_model(tmp_path, "config")
    (config / "config.json").unlink()
    os.mkfifo(config / "config.json")
    code = (
        "import sys\n"
        "from exprsim.models.embedder import model_identity\n"
        "from exprsim.training.run import unfinished_export\n"
        f"print(unfinished_export({str(locked)!r}))\n"
        f"print(model_identity({str(weights)!r}))\n"
        f"print(model_identity({str(config)!r}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["None", str(weights), str(config)]
    assert unfinished_export(locked) is None and model_identity(weights) == str(weights)


def test_settings_of_a_shipped_name_changed_alone_are_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Review: scripts/prior_readout.py keeps the name and version and changes only the
    class weights of config.json: embeddings up to 0.14 apart, and no warning."""
    folder = copy_model(tmp_path, "prior")

    def change(cfg: dict) -> None:
        cfg["model_kwargs"]["class_weights"] = [1.0] * 8

    edit_config(folder, change)
    with caplog.at_level(logging.WARNING):
        load_model(str(folder))
    assert "with other weights or settings" in caplog.text
