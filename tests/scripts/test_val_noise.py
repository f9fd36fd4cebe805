"""scripts/val_noise.py: the triplet-draw spread and its options (no data needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from file_module import load_file_module

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "val_noise.py"


@pytest.fixture(scope="module")
def vn():
    yield from load_file_module(SCRIPT, "val_noise")


def test_paired_spread_of_identical_and_opposite_embeddings(vn):
    rng = np.random.default_rng(1)
    votes = rng.dirichlet(np.full(8, 0.3), size=300).astype(np.float32)
    good = np.sqrt(votes)  # the vote geometry itself: every clear triplet right
    noise = rng.normal(size=(300, 8)).astype(np.float32)
    out = vn.paired_triplet_spread(votes, {"a": good, "b": good}, 200, 3, 0.2)
    assert out["difference"]["per_seed"] == [0.0, 0.0, 0.0]
    out = vn.paired_triplet_spread(votes, {"good": good, "noise": noise}, 200, 3, 0.2)
    assert out["accuracy"]["good"] == [1.0, 1.0, 1.0]
    assert out["difference"]["mean"] < -0.3  # a random space loses most triplets


def test_models_and_rescore_are_exclusive(vn, capsys):
    for argv in ([], ["--models", "a", "--rescore", "b"]):
        with pytest.raises(SystemExit) as exc:
            vn.main(argv)
        assert exc.value.code == 2
    assert "exactly one" in capsys.readouterr().err
