"""Round 24: a mesh cache the disk refuses is warned about, and the meshes just computed
are used (the whole computation was lost to a traceback)."""

from __future__ import annotations

import errno
import logging
from pathlib import Path

import numpy as np
import pytest

import exprsim.io
from exprsim.pvae import features

from .test_mesh_cache_audit21 import calls  # noqa: F401  (the fixture)


def test_a_cache_the_disk_refuses_keeps_the_meshes(
    tmp_path: Path,
    calls: list[int],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(exprsim.io, "write_atomically", full)
    with caplog.at_level(logging.WARNING, logger="exprsim.pvae.features"):
        got = features.extract_fer_landmarks("PublicTest", tmp_path, progress=False)
    assert got.ok.all() and got.mesh.shape == (6, 478, 3) and np.isfinite(got.mesh).all()
    assert calls == [6]
    assert any("could not cache the face meshes" in r.getMessage() for r in caplog.records)
    assert not (tmp_path / "mesh-PublicTest.npz").exists()
