"""scripts/prior_readout.py --write: the model folder copied with class weights (no data)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from file_module import load_file_module

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "prior_readout.py"


@pytest.fixture(scope="module")
def pr():
    yield from load_file_module(SCRIPT, "prior_readout")


def _model(folder: Path, kwargs: dict) -> Path:
    folder.mkdir()
    cfg = {"model": "exprnet_ens", "embedding_dim": 16, "model_kwargs": kwargs, "version": "7"}
    cfg["tag_threshold"] = 0.55
    (folder / "config.json").write_text(json.dumps(cfg))
    (folder / "model.safetensors").write_bytes(b"weights")
    return folder


def test_write_multiplies_into_existing_weights_and_sets_version(pr, tmp_path):
    w0 = [1.0, 2.0, 1.0, 1.0, 1.0, 0.5, 1.0, 1.0]
    src = _model(tmp_path / "m", {"readout_angle": 15.0, "class_weights": w0})
    w = np.array([0.5, 1.0, 2.0, 1.0, 1.0, 4.0, 1.0, 1.0 / 3])
    pr.write_model(str(src), str(tmp_path / "out"), w, "8")
    cfg = json.loads((tmp_path / "out" / "config.json").read_text())
    expected = [round(a * b, 6) for a, b in zip(w0, w.tolist(), strict=True)]
    assert cfg["model_kwargs"]["class_weights"] == expected
    assert cfg["model_kwargs"]["readout_angle"] == 15.0 and cfg["version"] == "8"
    assert cfg["tag_threshold"] is None  # the space changed: calibrated again after
    assert (tmp_path / "out" / "model.safetensors").read_bytes() == b"weights"
    assert not (tmp_path / "out.partial").exists()
    assert "class_weights" in json.loads((src / "config.json").read_text())["model_kwargs"]


def test_write_without_earlier_weights_keeps_the_version(pr, tmp_path):
    src = _model(tmp_path / "m", {"readout_angle": 15.0})
    pr.write_model(str(src), str(tmp_path / "out"), np.full(8, 1.25), None)
    cfg = json.loads((tmp_path / "out" / "config.json").read_text())
    assert cfg["model_kwargs"]["class_weights"] == [1.25] * 8 and cfg["version"] == "7"


@pytest.mark.parametrize(
    "argv",
    [
        ["--betas", "0.1", "0.25", "--write", "X"],
        ["--betas", "0.25", "--version", "8"],
    ],
)
def test_write_options_refused_before_any_work(pr, tmp_path, argv, capsys):
    with pytest.raises(SystemExit) as exc:
        pr.main(["--run", str(tmp_path / "nope"), "--model", "default", *argv])
    assert exc.value.code == 2
    assert "--write" in capsys.readouterr().err


def test_write_refuses_an_existing_folder(pr, tmp_path, capsys):
    with pytest.raises(SystemExit):
        pr.main(["--run", "r", "--model", "m", "--betas", "0.25", "--write", str(tmp_path)])
    assert "already exists" in capsys.readouterr().err


@pytest.mark.parametrize("spelling", ["out/", "out"])
def test_write_with_a_trailing_slash_and_a_left_partial(pr, tmp_path, spelling, monkeypatch):
    monkeypatch.chdir(tmp_path)
    src = _model(tmp_path / "m", {"readout_angle": 15.0})
    pr.write_model(str(src), spelling, np.ones(8), None)
    assert (tmp_path / "out" / "config.json").is_file()
    assert not (tmp_path / "out.partial").exists()
    (tmp_path / "other.partial").mkdir()  # a folder of that name is never deleted
    with pytest.raises(SystemExit, match="already exists"):
        pr.write_model(str(src), "other", np.ones(8), None)
    assert (tmp_path / "other.partial").is_dir() and not (tmp_path / "other").exists()
