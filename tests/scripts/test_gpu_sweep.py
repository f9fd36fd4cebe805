"""scripts/gpu_sweep.py: job definitions, config overrides and result packing (no GPU)."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from file_module import load_file_module

SWEEP = Path(__file__).resolve().parents[2] / "scripts" / "gpu_sweep.py"


@pytest.fixture(scope="module")
def sweep():
    yield from load_file_module(SWEEP, "gpu_sweep")


def test_nested_augmentation_overrides_keep_the_other_fields(sweep):
    base = sweep._config("configs/quick.json", {})
    cfg = sweep._config("configs/quick.json", sweep.QUICK["q-light"])
    assert cfg.augmentation.erase_p == 0.0 and cfg.augmentation.rotate_deg == 8.0
    assert tuple(cfg.augmentation.scale) == (0.95, 1.05)
    assert cfg.augmentation.contrast == base.augmentation.contrast  # untouched fields stay
    assert cfg.epochs == base.epochs == 13


def test_seeded_jobs_share_the_validation_split(sweep):
    for name in ("hel-s1", "pp-s2", "base-s1"):
        s1, s2 = sweep.JOBS[name]
        assert s1["split_seed"] == s2["split_seed"] == 0 and s1["seed"] == int(name[-1])
    assert sweep.JOBS["hel-s0"][0]["distribution_loss"] == "hellinger"
    assert sweep.JOBS["pp-s0"][1]["prob_pair_weight"] == 0.25


def test_only_the_named_jobs_state_comes_back(sweep, tmp_path):
    for name in ("a", "b"):
        st = tmp_path / "jobs" / name / "stage2"
        st.mkdir(parents=True)
        for f in ("model.safetensors", "last.safetensors", "state.pt", "metrics.jsonl"):
            (st / f).write_text(f)
    sweep._pack_results(tmp_path, ["a", "b"], 1, {"b"})
    names = {}
    for t in ("runs-0.tar", "runs-1.tar"):
        with tarfile.open(tmp_path / t) as tar:
            names[t] = set(tar.getnames())
    assert "a/stage2/model.safetensors" in names["runs-0.tar"]
    assert not {"a/stage2/state.pt", "a/stage2/last.safetensors"} & names["runs-0.tar"]
    assert {"b/stage2/state.pt", "b/stage2/last.safetensors"} <= names["runs-1.tar"]
