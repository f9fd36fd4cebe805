"""Round 33: ``tag calibrate --save`` wrote the threshold calibrated on one model's weights
into a folder that another export had filled meanwhile (``exprsim ensemble --out``, a
training run): later tagging used a threshold of other weights, without a word."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_run import digest, one_line, run

from exprsim.apps import tag as tag_mod
from exprsim.models.embedder import _weights_dir


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "m"
    shutil.copytree(_weights_dir("default"), folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["tag_threshold"] = None
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


def _calibration() -> tag_mod.TagCalibration:
    t = np.round(np.arange(0.1, 1.51, 0.025), 6)
    f1 = 1.0 - np.abs(t - 0.6)
    return tag_mod.TagCalibration(t, f1, f1, f1, 8, 100, 800, 0.2)


def test_weights_replaced_during_the_calibration_get_no_threshold(
    model_dir: Path, monkeypatch, capsys
) -> None:
    def calibrate_while_replaced(*a, **k):
        weights = model_dir / "model.safetensors"
        data = bytearray(weights.read_bytes())
        data[-1] ^= 0xFF  # another export's weights
        weights.write_bytes(bytes(data))
        return _calibration()

    monkeypatch.setattr(tag_mod, "calibrate_from_ferplus", calibrate_while_replaced)
    before = digest(model_dir / "config.json")
    rc, _, err = run(capsys, "tag", "calibrate", "--model", str(model_dir), "--save")
    assert rc != 0 and "changed while it was calibrated" in one_line(err)
    assert digest(model_dir / "config.json") == before  # was: tag_threshold 0.6 written


def test_an_unchanged_model_still_gets_its_threshold(model_dir: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(tag_mod, "calibrate_from_ferplus", lambda *a, **k: _calibration())
    rc, out, _ = run(capsys, "tag", "calibrate", "--model", str(model_dir), "--save")
    assert rc == 0 and "tag_threshold 0.6 ->" in out
