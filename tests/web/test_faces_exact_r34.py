"""Round 34: ``POST /api/faces`` rounded each embedding value to 6 places: the vector
differed from the one ``exprsim embed`` and the index hold by up to 5e-7 per value. It now
holds the exact float32 values."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def test_the_embedding_is_the_embedders_own(make_client, photo, random_model_dir: Path) -> None:
    from exprsim.io import load_image
    from exprsim.models.embedder import load_model
    from exprsim.samples import sample_path

    r = make_client().post("/api/faces", files={"file": photo()})
    assert r.status_code == 200, r.text
    got = np.array(r.json()["faces"][0]["embedding"], dtype=np.float64)
    faces = load_model(str(random_model_dir)).embed_images(
        [load_image(sample_path("grace_hopper.jpg"))]
    )
    want = faces[0].embedding
    assert np.array_equal(got.astype(np.float32), want)  # was: off by up to 5e-7
    assert np.array_equal(got, want.astype(np.float64))  # each value a float32, exactly
