"""The FER mesh cache of the perceptual VAE is keyed by pixels, not row numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from exprsim.pvae import features
from run_folders import FakeSplit

_Split = FakeSplit


def test_cache_is_reused_for_the_same_pixels_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import exprsim.data.fer as fer

    calls: list[int] = []

    def fake_chunk(args: tuple[int, np.ndarray, int]) -> tuple[int, np.ndarray, np.ndarray]:
        start, crops, _ = args
        calls.append(len(crops))
        mesh = np.zeros((len(crops), 478, 3), np.float32) + crops.mean(axis=(1, 2))[:, None, None]
        return start, mesh, np.ones(len(crops), bool)

    rng = np.random.default_rng(0)
    first = _Split(rng.integers(0, 256, (6, 48, 48), dtype=np.uint8), np.arange(6, dtype=np.int64))
    other = _Split(255 - first.images, first.rows.copy())  # same rows, other pixels
    current = {"split": first}
    monkeypatch.setattr(fer, "load_ferplus", lambda *a, **k: current["split"])
    monkeypatch.setattr(features, "_mesh_chunk", fake_chunk)

    a = features.extract_fer_landmarks("PublicTest", tmp_path, progress=False)
    assert calls == [6]
    b = features.extract_fer_landmarks("PublicTest", tmp_path, progress=False)
    assert calls == [6] and np.array_equal(a.mesh, b.mesh)  # read from the cache
    current["split"] = other
    c = features.extract_fer_landmarks("PublicTest", tmp_path, progress=False)
    assert calls == [6, 6]  # rows matched, pixels did not: recomputed (was: stale meshes)
    assert not np.array_equal(a.mesh, c.mesh)
    features.extract_fer_landmarks("PublicTest", tmp_path, side=96, progress=False)
    assert calls == [6, 6, 6]  # another mesh input size is another cache
