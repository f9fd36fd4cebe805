"""Round 34: a perceptual-VAE run records the absolute folder of its mesh cache (its
``result.json``), so that it is evaluated from any working folder; a run that recorded
only the relative ``landmark_cache`` of its config is still found by the search beside the
run. Stub meshes and FER+ labels: no FER+ data."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from exprsim.pvae import features

from .test_pvae_audit33 import _run


@pytest.fixture
def stub_fer(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """FER+ Training meshes (40 random faces) and labels; returns the caches asked for."""
    import exprsim.data.fer as fer

    n, asked = 40, []

    def fake_extract(usage: str, cache_dir: Any, data_dir: Any = None, **kw: Any) -> Any:
        asked.append(cache_dir)
        m = min(n, kw.get("limit") or n)
        mesh = np.random.default_rng(0).normal(size=(m, 478, 3)).astype(np.float32)
        return features.FerLandmarks(mesh, np.ones(m, bool), np.arange(m), usage, 0.0)

    class Split:
        dist = np.random.default_rng(1).dirichlet(np.ones(8), n).astype(np.float32)
        majority = dist.argmax(axis=1).astype(np.int64)

    monkeypatch.setattr(features, "extract_fer_landmarks", fake_extract)
    monkeypatch.setattr(fer, "load_ferplus", lambda *a, **k: Split())
    return asked


def test_the_training_data_names_its_cache_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stub_fer: list[Any]
) -> None:
    from exprsim.pvae.data import fer_training_landmarks

    monkeypatch.chdir(tmp_path)
    _, stats = fer_training_landmarks("runs/pvae", None, 0.25, 0, progress=False)
    assert stats["landmark_cache"] == os.path.join(os.getcwd(), "runs", "pvae")  # was absent
    assert stub_fer == ["runs/pvae"]  # meshed where it was asked


def test_a_new_run_is_evaluated_from_another_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stub_fer: list[Any]
) -> None:
    from exprsim.pvae.evaluate import run_data
    from exprsim.training.pvae import PVAETrainConfig, train_pvae

    here, elsewhere = tmp_path / "proj", tmp_path / "elsewhere"
    for d in (here, elsewhere):
        d.mkdir()
    run = tmp_path / "store" / "runs" / "pa"  # not beside its cache: no search finds it
    monkeypatch.chdir(here)
    cfg = PVAETrainConfig(
        model="pvae-vae", data="ferplus", landmark_cache="cache", val_fraction=0.25,
        iterations=2, eval_every=1, batch_size=8, latent_dim=3, encoder_hidden=(8,),
        decoder_hidden=(8,), anneal_iterations=1,
    )  # fmt: skip
    train_pvae(cfg, run, progress=False)
    cache = Path(os.getcwd()) / "cache"
    cache.mkdir()  # the meshes training cached (the stub wrote none)
    (cache / "mesh-Training.npz").write_bytes(b"m")
    assert json.loads((run / "result.json").read_text())["landmark_cache"] == str(cache)
    monkeypatch.chdir(elsewhere)
    files = run_data(run).mesh_files(run)
    # was elsewhere/cache: the relative config value, found nowhere, meshed FER+ again
    assert files == [cache / f"mesh-{s}.npz" for s in ("Training", "PublicTest")]


def test_a_recorded_cache_that_is_gone_falls_back_to_the_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A project moved to another folder or machine: the recorded absolute folder is not
    there, and the relative ``landmark_cache`` is found beside the run, as before."""
    from exprsim.pvae.evaluate import run_data

    proj = tmp_path.resolve() / "proj"
    run = _run(proj / "runs" / "pa")
    (proj / "runs" / "pvae").mkdir()
    (proj / "runs" / "pvae" / "mesh-PublicTest.npz").write_bytes(b"m")
    gone = str(tmp_path / "old-machine" / "runs" / "pvae")
    (run / "result.json").write_text(json.dumps({"landmark_cache": gone}))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    files = run_data(run).mesh_files(run)
    assert files == [proj / "runs" / "pvae" / f"mesh-{s}.npz" for s in ("Training", "PublicTest")]
    for bad in ("[1]", "not json", json.dumps({"landmark_cache": 3})):  # an odd record
        (run / "result.json").write_text(bad)
        assert run_data(run).mesh_files(run) == files
