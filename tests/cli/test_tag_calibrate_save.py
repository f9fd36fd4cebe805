"""``exprsim tag calibrate --save``: the best-F1 threshold written into a model folder's
config.json, which tagging with that model then uses."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_run import digest, one_line, run

from exprsim.apps import tag as tag_mod
from exprsim.apps.tag import model_threshold, save_tag_threshold
from exprsim.errors import ExprsimError
from exprsim.models.embedder import _weights_dir, load_model


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A copy of the shipped model with no calibrated threshold."""
    folder = tmp_path / "m"
    shutil.copytree(_weights_dir("default"), folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["tag_threshold"] = None
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


def _calibration(best: float) -> tag_mod.TagCalibration:
    """A calibration whose F1 peaks at ``best`` (on a grid of 0.025)."""
    t = np.round(np.arange(0.1, 1.51, 0.025), 6)
    f1 = 1.0 - np.abs(t - best)
    return tag_mod.TagCalibration(t, f1, f1, f1, 8, 100, 800, 0.2)


def test_save_keeps_every_other_key_and_tagging_uses_it(model_dir: Path) -> None:
    before = json.loads((model_dir / "config.json").read_text())
    assert model_threshold(load_model(str(model_dir))) == tag_mod.DEFAULT_THRESHOLD
    save_tag_threshold(model_dir, 0.575)
    after = json.loads((model_dir / "config.json").read_text())
    assert after == {**before, "tag_threshold": 0.575}
    assert model_threshold(load_model(str(model_dir))) == 0.575


@pytest.mark.parametrize("bad", [0.0, -0.1, 2.5, float("nan")])
def test_save_refuses_a_threshold_that_is_no_distance(model_dir: Path, bad: float) -> None:
    before = digest(model_dir / "config.json")
    with pytest.raises(ExprsimError, match="distance in"):
        save_tag_threshold(model_dir, bad)
    assert digest(model_dir / "config.json") == before


def test_save_refuses_the_shipped_model_and_a_folder_without_config(tmp_path: Path) -> None:
    shipped = _weights_dir("default") / "config.json"
    before = digest(shipped)
    with pytest.raises(ExprsimError, match="shipped model"):
        save_tag_threshold("default", 0.6)
    assert digest(shipped) == before
    with pytest.raises(ExprsimError, match="no such model config"):
        save_tag_threshold(tmp_path, 0.6)


def test_cli_calibrate_save_writes_the_best_threshold(model_dir, monkeypatch, capsys) -> None:
    monkeypatch.setattr(tag_mod, "calibrate_from_ferplus", lambda *a, **k: _calibration(0.6))
    rc, out, _ = run(capsys, "tag", "calibrate", "--model", str(model_dir), "--save")
    assert rc == 0 and "tag_threshold 0.6 ->" in out
    assert json.loads((model_dir / "config.json").read_text())["tag_threshold"] == 0.6


def test_cli_save_is_refused_before_the_calibration(monkeypatch, capsys, tmp_path) -> None:
    def never(*a, **k):
        raise AssertionError("calibrated before refusing")

    monkeypatch.setattr(tag_mod, "calibrate_from_ferplus", never)
    rc, _, err = run(capsys, "tag", "calibrate", "--save")  # the shipped model
    assert rc == 2 and "--model FOLDER" in one_line(err)
    rc, _, err = run(capsys, "tag", "calibrate", "--model", str(tmp_path), "--save")
    assert rc == 2 and "no such model config" in one_line(err)
    rc, _, err = run(capsys, "tag", "list", "--db", str(tmp_path / "x.db"), "--save")
    assert rc == 2 and "does not take --save" in one_line(err)
