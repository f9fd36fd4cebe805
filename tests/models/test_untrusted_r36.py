"""Round 36, a review of round 35: a config describing far more network than its weights
file holds (20,000 ensemble members of 3 bytes each) is refused before anything is built
(it took 3 minutes and 3 GB on PyTorch's meta device)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from exprsim.errors import ModelError
from exprsim.models.embedder import _weights_dir, load_model


def test_a_config_of_thousands_of_members_is_refused_at_once(tmp_path: Path) -> None:
    out = tmp_path / "m"
    shutil.copytree(_weights_dir("default"), out)
    cfg = json.loads((out / "config.json").read_text())
    cfg["version"] = "r36-test"
    cfg["model_kwargs"]["members"] = [{}] * 20_000
    (out / "config.json").write_text(json.dumps(cfg, separators=(",", ":")))
    t0 = time.perf_counter()
    with pytest.raises(ModelError, match=r"20,015 parts .* 139 tensors"):
        load_model(str(out))
    assert time.perf_counter() - t0 < 10  # 181 s before
