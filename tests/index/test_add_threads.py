"""``FaceIndex.add`` with the threaded front-end stores what the one-thread path stores."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from exprsim.samples import sample_path

pytest.importorskip("mediapipe")

NAMES = ["grace_hopper.jpg", "pexels_langer_frame000.jpg", "astronaut_eileen_collins.jpg"]


def test_two_front_end_threads_store_the_same_faces(tmp_path, random_embedder):
    from exprsim.index.store import FaceIndex

    photos = tmp_path / "photos"
    photos.mkdir()
    for n in NAMES:
        shutil.copy(sample_path(n), photos / n)
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    stored = {}
    for workers in (1, 2):
        with FaceIndex(tmp_path / f"w{workers}.db", embedder=random_embedder) as index:
            report = index.add([photos], workers=workers)
            assert report.count("added") == 3 and report.count("failed") == 1
            assert [f.status for f in report.files] == ["added", "failed", "added", "added"]
            stored[workers] = {
                (r.source.split("/")[-1], r.face_index): r.embedding for r in index.records()
            }
            again = index.add([photos], workers=workers)  # resumable: nothing to redo
            assert again.count("skipped") == 4 and again.added_faces == 0
    one, two = stored[1], stored[2]
    assert sorted(one) == sorted(two) == [(n, 0) for n in sorted(NAMES)]
    for key, emb in one.items():
        np.testing.assert_allclose(emb, two[key], atol=1e-6)
