"""Twelfth robustness round: tags on degenerate data.

Identical references are at exactly the same distance (ties break by name, not by
rounding), a calibration with nothing to pair is refused instead of recommending 0.0, the
grid's thresholds print as 0.575 (not 0.5750000000000001), and a reference face that fails
the quality check is stored with a warning.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from stub_embedder import StubEmbedder

from exprsim.apps.tag import Tagger, calibrate_threshold, match_tags
from exprsim.errors import ExprsimError
from exprsim.index.store import FaceIndex


def _unit(rng: np.random.Generator, n: int, d: int = 16) -> np.ndarray:
    x = rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_identical_references_are_at_exactly_the_same_distance() -> None:
    rng = np.random.default_rng(3)
    ref = _unit(rng, 1)[0].astype(np.float32)
    refs = np.stack([ref, ref, _unit(rng, 1)[0]])
    faces = np.vstack([_unit(rng, 200), ref[None].astype(np.float64)])
    out = match_tags(faces, refs, ["sharp2", "sharp", "other"], threshold=2.0)
    exact = np.linalg.norm(faces[:, None, :] - refs.astype(np.float64)[None], axis=2)
    for (tags, dist), row in zip(out, exact, strict=True):
        assert dist["sharp"] == dist["sharp2"]  # bit for bit
        assert dist["sharp"] == pytest.approx(row[0], rel=0, abs=1e-15)
        # a tie breaks by name: "sharp" before "sharp2", every time
        assert tags.index("sharp") < tags.index("sharp2")
    # the reference's own copy is at distance 0, not 1e-7
    assert out[-1][1]["sharp"] == 0.0


def test_calibration_with_no_class_of_two_faces_is_refused() -> None:
    x = _unit(np.random.default_rng(0), 4)
    with pytest.raises(ExprsimError, match="no two faces of one class"):
        calibrate_threshold(x, np.array([0, 1, 2, 3]))


def test_calibration_thresholds_print_as_their_grid_values() -> None:
    rng = np.random.default_rng(1)
    x = _unit(rng, 40)
    y = np.repeat(np.arange(4), 10)
    cal = calibrate_threshold(x, y)
    doc = cal.to_dict()
    assert cal.at(0.575)["threshold"] == 0.575  # the grid holds 0.5750000000000001
    assert str(doc["best_f1_threshold"]) == repr(round(doc["best_f1_threshold"], 6))
    json.dumps(doc, allow_nan=False)  # nothing to measure is refused, so no NaN


def _rejected_face(stub: StubEmbedder, image: Path):
    from dataclasses import replace

    (face,) = stub.embed_images([image])
    q = replace(face.aligned.quality, ok=False, reasons=("blur",), sharpness=0.4)
    return replace(face, aligned=replace(face.aligned, quality=q))


def test_a_reference_that_fails_quality_is_stored_with_a_warning(
    tmp_path: Path, stub: StubEmbedder, caplog: pytest.LogCaptureFixture
) -> None:
    from stub_embedder import write_images

    imgs = write_images(tmp_path / "imgs", 2)
    with FaceIndex(tmp_path / "faces.db", embedder=stub) as index:
        tagger = Tagger(index)
        with caplog.at_level(logging.WARNING, logger="exprsim"):
            tagger.add("blurry", _rejected_face(stub, imgs[0]))
        assert "fails the quality check (blur)" in caplog.text
        assert tagger.names() == ["blurry"]
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="exprsim"):
            tagger.add("fine", imgs[1])
        assert "quality" not in caplog.text
