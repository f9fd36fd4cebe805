"""Round 33 (audit E), the perceptual VAE: ``encode_features`` checks its batch size and
takes read-only arrays; an unexported run is named as one; a relative ``landmark_cache`` is
found beside the run; the mesh extraction says what it is about to do. Each test failed
before its fix. Tiny random networks and stub meshes: no FER+ data."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from exprsim.errors import ArgumentError, ExprsimError, ModelError
from exprsim.pvae import features
from run_folders import pvae_run

from .test_mesh_cache_audit21 import calls  # noqa: F401  (the fixture)


def _run(folder: Path, dim: int = 6, weights: bool = True, cache: str = "runs/pvae") -> Path:
    """A perceptual-VAE run folder with random weights on ``dim`` features."""
    return pvae_run(folder, dim, weights=weights, cache=cache)


@pytest.mark.parametrize("batch_size", [-1, 0, 2.5, True, "8", None])
def test_encode_features_refuses_a_batch_size_below_one(tmp_path: Path, batch_size: Any) -> None:
    from exprsim.pvae.codes import load_pvae

    enc = load_pvae(_run(tmp_path / "r"), feature_dim=None)
    x = np.zeros((5, 6), np.float32)
    # -1 gave (0, 3) codes for 5 faces; 0 "range() arg 3 must not be zero"; 2.5 a TypeError
    with pytest.raises(ArgumentError, match="batch_size must be an integer >= 1") as exc:
        enc.encode_features(x, batch_size=batch_size)
    assert isinstance(exc.value, ExprsimError)
    assert enc.encode_features(x, batch_size=np.int64(2)).shape == (5, 3)


def test_encode_features_hands_torch_writable_arrays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from exprsim.pvae.codes import load_pvae

    enc = load_pvae(_run(tmp_path / "r"), feature_dim=None)
    x = np.random.default_rng(0).normal(size=(5, 6)).astype(np.float32)
    want = enc.encode_features(x.copy())
    handed: list[bool] = []
    real = torch.from_numpy

    def from_numpy(arr: np.ndarray) -> Any:
        handed.append(bool(arr.flags.writeable))
        return real(arr)

    monkeypatch.setattr(torch, "from_numpy", from_numpy)
    ro = x.copy()
    ro.setflags(write=False)
    got = enc.encode_features(ro, batch_size=2)
    # was the caller's read-only array: torch warned "The given NumPy array is not writable"
    assert handed and all(handed)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert not ro.flags.writeable  # the caller's array is left as it was
    flipped = enc.encode_features(np.ascontiguousarray(x[::-1])[::-1])  # negative strides
    np.testing.assert_allclose(flipped, want, rtol=1e-6)


def test_an_unexported_run_is_named_as_one(tmp_path: Path) -> None:
    import torch

    from exprsim.pvae.codes import load_pvae

    run = _run(tmp_path / "pvs", weights=False)
    torch.save({"iteration": 1450}, run / "state.pt")
    # was "not a perceptual-VAE run (pvae_config.json + weights)"
    with pytest.raises(ModelError, match="training run not exported yet") as exc:
        load_pvae(run, feature_dim=None)
    assert "exprsim train" in str(exc.value) and "\n" not in str(exc.value)
    (run / "train_config.json").unlink()
    (run / "state.pt").unlink()
    with pytest.raises(ModelError, match="without its weights"):
        load_pvae(run, feature_dim=None)
    with pytest.raises(ModelError, match="not a perceptual-VAE run"):
        load_pvae(tmp_path, feature_dim=None)


def test_a_relative_landmark_cache_is_found_beside_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from exprsim.pvae.evaluate import run_data

    proj = tmp_path.resolve() / "proj"
    run = _run(proj / "runs" / "pa")
    (proj / "runs" / "pvae").mkdir()
    (proj / "runs" / "pvae" / "mesh-PublicTest.npz").write_bytes(b"m")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    files = run_data(run).mesh_files(run)
    # was elsewhere/runs/pvae: relative to the working folder
    assert files == [proj / "runs" / "pvae" / f"mesh-{s}.npz" for s in ("Training", "PublicTest")]
    monkeypatch.chdir(proj)  # where it was trained: the working folder's comes first
    assert run_data(run).mesh_files(run)[0] == Path("runs/pvae/mesh-Training.npz")


def test_meshing_says_how_many_faces_where_and_how_long_before_it_starts(
    tmp_path: Path,
    calls: list[int],  # noqa: F811
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started: list[int] = []
    fake = features._mesh_chunk  # the fixture's

    def chunk(args: Any) -> Any:
        started.append(len(caplog.records))  # what was said before the first chunk
        return fake(args)

    monkeypatch.setattr(features, "_mesh_chunk", chunk)
    with caplog.at_level(logging.WARNING, logger="exprsim.pvae.features"):
        features.extract_fer_landmarks("PublicTest", tmp_path / "c", progress=False)
    said = [r.getMessage() for r in caplog.records]
    assert started and started[0] == 1 and len(said) == 1, said  # was silent
    assert str((tmp_path / "c" / "mesh-PublicTest.npz").absolute()) in said[0]
    assert "meshing the 6 faces of FER+ PublicTest" in said[0]
    assert "under a minute" in said[0]
    caplog.clear()
    features.extract_fer_landmarks("PublicTest", tmp_path / "c", progress=False)
    assert caplog.records == []  # cached: nothing to announce


def test_rough_duration_in_words() -> None:
    assert features._rough_duration(31_700, 1) == "about 8 minutes"
    assert features._rough_duration(31_700, 7) == "about a minute"
    assert features._rough_duration(100, 1) == "under a minute"
