"""Round 21: the FER mesh cache is written whole or not at all, and a damaged cache file
(cut short by a stop while it was written, or not an archive) is recomputed with a
warning instead of a traceback."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

import exprsim.io
from exprsim.pvae import features
from run_folders import FakeSplit

_Split = FakeSplit


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    import exprsim.data.fer as fer

    made: list[int] = []

    def fake_chunk(args: tuple[int, np.ndarray, int]) -> tuple[int, np.ndarray, np.ndarray]:
        start, crops, _ = args
        made.append(len(crops))
        mesh = np.zeros((len(crops), 478, 3), np.float32) + crops.mean(axis=(1, 2))[:, None, None]
        return start, mesh, np.ones(len(crops), bool)

    rng = np.random.default_rng(0)
    split = _Split(rng.integers(0, 256, (6, 48, 48), dtype=np.uint8), np.arange(6, dtype=np.int64))
    monkeypatch.setattr(fer, "load_ferplus", lambda *a, **k: split)
    monkeypatch.setattr(features, "_mesh_chunk", fake_chunk)
    return made


def _damage(path: Path, how: str) -> None:
    if how == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif how == "garbage":
        path.write_bytes(b"not a zip archive at all")
    elif how == "empty":
        path.write_bytes(b"")
    else:  # a plain .npy under the cache's name
        with open(path, "wb") as fh:
            np.save(fh, np.zeros(3))


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty", "npy"])
def test_a_damaged_cache_is_recomputed_with_a_warning(
    tmp_path: Path, calls: list[int], how: str, caplog: pytest.LogCaptureFixture
) -> None:
    a = features.extract_fer_landmarks("PublicTest", tmp_path, progress=False)
    path = tmp_path / "mesh-PublicTest.npz"
    _damage(path, how)
    with caplog.at_level(logging.WARNING, logger="exprsim.pvae.features"):
        b = features.extract_fer_landmarks("PublicTest", tmp_path, progress=False)
    assert calls == [6, 6] and np.array_equal(a.mesh, b.mesh)  # recomputed, not a traceback
    assert any(
        "damaged" in r.getMessage() and "recomputing" in r.getMessage() for r in caplog.records
    )
    features.extract_fer_landmarks("PublicTest", tmp_path, progress=False)
    assert calls == [6, 6]  # the rewritten cache is whole: read back


def test_the_cache_is_written_whole_or_not_at_all(
    tmp_path: Path, calls: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails half-way (a full disk, a stop) leaves the earlier cache, not a
    half file under the cache's name, and no temporary file behind."""
    features.extract_fer_landmarks("PublicTest", tmp_path, progress=False)
    path = tmp_path / "mesh-PublicTest.npz"
    before = path.read_bytes()

    def half_then_fail(file, *args, **kwargs):  # type: ignore[no-untyped-def]
        if hasattr(file, "write"):
            file.write(b"PK\x03\x04 half an archive")
        else:
            Path(str(file)).write_bytes(b"PK\x03\x04 half an archive")
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:  # the cache's writer (numpy's savez until round 23)
        m.setattr(exprsim.io, "save_npz", half_then_fail)
        # another side: a miss, recomputed; the failed cache is warned about (round 24:
        # it raised, and the meshes just computed were lost)
        got = features.extract_fer_landmarks("PublicTest", tmp_path, side=96, progress=False)
    assert calls == [6, 6] and got.mesh.shape == (6, 478, 3)
    assert path.read_bytes() == before  # the file there before, untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mesh-PublicTest.npz"]
