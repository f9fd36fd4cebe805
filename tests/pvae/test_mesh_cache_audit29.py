"""Round 29 (round 28's training audit): a smoke run's ``max_train`` meshes only its own
faces, and ``-q`` quiets the mesh extraction's bar."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from exprsim.pvae import features

from .test_mesh_cache_audit21 import calls  # noqa: F401  (the fixture)


def test_a_limit_meshes_only_the_first_faces_and_caches_them_apart(
    tmp_path: Path,
    calls: list[int],  # noqa: F811
) -> None:
    few = features.extract_fer_landmarks("PublicTest", tmp_path, progress=False, limit=2)
    assert calls == [2] and few.mesh.shape == (2, 478, 3) and list(few.rows) == [0, 1]
    assert (tmp_path / "mesh-PublicTest-first2.npz").is_file()
    assert not (tmp_path / "mesh-PublicTest.npz").exists()  # the whole split's cache untouched
    again = features.extract_fer_landmarks("PublicTest", tmp_path, progress=False, limit=2)
    assert calls == [2] and np.array_equal(again.mesh, few.mesh)  # from its cache
    whole = features.extract_fer_landmarks("PublicTest", tmp_path, progress=False)
    assert calls == [2, 6] and whole.mesh.shape == (6, 478, 3)
    three = features.extract_fer_landmarks("PublicTest", tmp_path, progress=False, limit=3)
    assert calls == [2, 6]  # the whole split's cache serves a smaller limit
    assert np.array_equal(three.mesh, whole.mesh[:3]) and list(three.rows) == [0, 1, 2]
    assert np.array_equal(few.mesh, whole.mesh[:2])  # the same meshes either way
    bigger = features.extract_fer_landmarks("PublicTest", tmp_path, progress=False, limit=60)
    assert calls == [2, 6] and bigger.mesh.shape == (6, 478, 3)  # a limit past the split


@pytest.mark.parametrize("progress", [True, False])
def test_the_training_data_passes_max_train_and_progress_on(
    monkeypatch: pytest.MonkeyPatch, progress: bool
) -> None:
    import exprsim.data.fer as fer
    from exprsim.pvae.data import fer_training_landmarks
    from exprsim.training.pvae import PVAETrainConfig, _load_pvae_data

    asked: list[dict[str, Any]] = []
    n = 10

    def fake_extract(usage: str, cache_dir: Any, data_dir: Any, **kw: Any) -> Any:
        asked.append(kw)
        m = min(n, kw.get("limit") or n)
        mesh = np.random.default_rng(0).normal(size=(m, 478, 3)).astype(np.float32)
        return features.FerLandmarks(mesh, np.ones(m, bool), np.arange(m), usage, 0.0)

    class Split:
        dist = np.full((n, 8), 1 / 8, np.float32)
        majority = np.zeros(n, np.int64)

    monkeypatch.setattr(features, "extract_fer_landmarks", fake_extract)
    monkeypatch.setattr(fer, "load_ferplus", lambda *a, **k: Split())
    data, stats = fer_training_landmarks("c", None, 0.2, 0, max_train=5, progress=progress)
    assert asked[-1] == {"progress": progress, "limit": 5} and stats["faces"] == 5
    assert len(data.x_train) + len(data.x_val) == 5
    cfg = PVAETrainConfig(data="ferplus", max_train=4, landmark_cache="c")
    _load_pvae_data(cfg, progress)
    assert asked[-1] == {"progress": progress, "limit": 4}
