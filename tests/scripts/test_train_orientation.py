"""scripts/train_orientation.py end to end on a synthetic split (no data needed)."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from file_module import load_file_module

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train_orientation.py"


@pytest.fixture(scope="module")
def script():
    yield from load_file_module(SCRIPT, "train_orientation")


@dataclass
class _Split:
    images: np.ndarray

    def __len__(self) -> int:
        return len(self.images)


def _faces(n: int) -> np.ndarray:
    """Dark "eyes" above a light "mouth": an up-down asymmetric pattern to learn."""
    rng = np.random.default_rng(0)
    ims = rng.integers(90, 140, (n, 48, 48)).astype(np.uint8)
    ims[:, 14:20, 10:18] = ims[:, 14:20, 30:38] = 20
    ims[:, 32:36, 16:32] = 230
    return ims


def test_trains_writes_weights_the_library_reads(script, tmp_path, monkeypatch):
    import exprsim.data.fer as fer
    from exprsim.faces.orientation import load_weights, upright_probability

    monkeypatch.setattr(fer, "load_ferplus", lambda *a, **k: _Split(_faces(64)))
    out = tmp_path / "o.npz"
    args = argparse.Namespace(out=str(out), epochs=3, seed=0, widths=[4, 4, 8, 8])
    script.train(args)
    weights = load_weights(str(out))
    report = json.loads(str(np.load(out)["report"]))
    assert report["epochs"] == 3 and report["n_publictest"] == 64 and report["n_validation"] == 3
    assert report["chosen_margin"] in script.MARGINS
    assert 0 <= report["publictest_upright_flagged"] <= 1
    p = upright_probability(_faces(8), weights)
    assert p.shape == (8,) and np.isfinite(p).all()


def test_the_shipped_margin_is_the_one_chosen_on_validation():
    """The library's margin is what the training script's validation rule chose for the
    shipped weights (their report says both)."""
    from exprsim.faces.orientation import UPSIDE_DOWN_MARGIN, WEIGHTS

    report = json.loads(str(np.load(WEIGHTS)["report"]))
    assert report["chosen_margin"] == report["margin"] == UPSIDE_DOWN_MARGIN
    assert report["widths"] == [16, 32, 64, 64] and report["n_validation"] == 1408
