"""Round 35 (a packaging audit): the perceptual-VAE library functions assumed the source
repository's working folder: ``pvae_codes`` defaulted to ``model="runs/pvae-m2"`` (from a
pip install: "runs/pvae-m2: not a perceptual-VAE run"), and ``extract_fer_landmarks``
meshed FER+ into ``./runs/pvae`` under whatever folder it was called from."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest

from exprsim.pvae import features
from exprsim.pvae.codes import pvae_codes
from run_folders import FakeSplit


def test_pvae_codes_needs_the_model_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert inspect.signature(pvae_codes).parameters["model"].default is inspect.Parameter.empty
    with pytest.raises(TypeError, match="model"):  # was ModelError: runs/pvae-m2: not a run
        pvae_codes(np.zeros((478, 3), np.float32))  # type: ignore[call-arg]


_Split = FakeSplit


def _fake_chunk(args: tuple[int, np.ndarray, int]) -> tuple[int, np.ndarray, np.ndarray]:
    start, crops, _ = args
    return start, np.zeros((len(crops), 478, 3), np.float32), np.ones(len(crops), bool)


def test_the_mesh_cache_defaults_to_the_user_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import exprsim.data.fer as fer

    rng = np.random.default_rng(0)
    split = _Split(rng.integers(0, 256, (3, 48, 48), dtype=np.uint8), np.arange(3))
    monkeypatch.setattr(fer, "load_ferplus", lambda *a, **k: split)
    monkeypatch.setattr(features, "_mesh_chunk", _fake_chunk)
    monkeypatch.setenv("EXPRSIM_CACHE", str(tmp_path / "cache"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    got = features.extract_fer_landmarks("PublicTest", progress=False)
    assert got.ok.all()
    assert (tmp_path / "cache" / "pvae" / "mesh-PublicTest.npz").is_file()
    assert not (work / "runs").exists()  # was ./runs/pvae/mesh-PublicTest.npz
