"""Faces cut by the border, panoramas, crop-name collisions, thread counts, odd-one-out ties,
a demo that cannot write (the fourth robustness round, docs/robustness.md)."""

from __future__ import annotations

import numpy as np
import pytest

from exprsim.faces.types import Face


def _face(landmarks) -> Face:
    pts = np.asarray(landmarks, np.float32)
    box = np.r_[pts.min(0) - 20, pts.max(0) + 20].astype(np.float32)
    return Face(box, 0.9, pts)


FRONTAL = [[100, 100], [160, 100], [130, 135], [108, 165], [152, 165]]


def test_a_face_cut_by_the_border_is_flagged_edge():
    from exprsim.faces.quality import assess, cut_off

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (300, 300, 3), dtype=np.uint8)
    assert not cut_off(np.array(FRONTAL), image.shape)
    assert "edge" not in assess(image, _face(FRONTAL)).reasons
    left = np.array(FRONTAL) - [150, 0]  # left eye at x = -50, nose at -20
    q = assess(image, _face(left))
    assert "edge" in q.reasons and not q.ok  # was quality_ok with half the crop black
    touching = np.array(FRONTAL) - [101, 0]  # an eye 1 px out: landmark noise, not a cut
    assert not cut_off(touching, image.shape)


def test_a_face_cut_at_the_chin_or_above_the_brows_is_flagged_edge():
    from exprsim.faces.quality import cut_off, face_extent

    chin, brows = face_extent(np.array(FRONTAL))
    # eyes' centre (130, 100), mouth's centre (130, 165): 0.4 and 0.22 of 65 px from them
    np.testing.assert_allclose(chin, [130, 165 + 0.4 * 65])
    np.testing.assert_allclose(brows, [130, 100 - 0.22 * 65])
    # every landmark inside (mouth at y = 165), the chin's least extent (191) not
    assert cut_off(np.array(FRONTAL), (180, 300, 3))
    assert not cut_off(np.array(FRONTAL), (200, 300, 3))
    # eyes 5 px from the top edge: the brows (9.3 px out) are cut; at 10 px (4.3 out) not
    assert cut_off(np.array(FRONTAL) - [0, 95], (300, 300, 3))
    assert not cut_off(np.array(FRONTAL) - [0, 90], (300, 300, 3))


def test_a_photo_cut_below_the_mouth_is_rejected_whole_ones_are_not():
    from exprsim.faces.pipeline import analyze_image
    from exprsim.io import load_image
    from exprsim.samples import sample_path

    image = load_image(sample_path("grace_hopper.jpg"))
    (whole,) = analyze_image(image)
    assert whole.quality.ok
    mouth_y = float(whole.face.landmarks[3:, 1].mean())
    (cut,) = analyze_image(np.ascontiguousarray(image[: int(mouth_y) + 10]))
    assert "edge" in cut.quality.reasons and not cut.quality.ok  # was accepted


def test_panoramas_keep_enough_height_to_find_faces():
    from exprsim.faces.detect import MIN_SHORT_SIDE, downscale_for_detection

    small, factor = downscale_for_detection(np.zeros((720, 5120, 3), np.uint8), 1280)
    assert min(small.shape[:2]) >= MIN_SHORT_SIDE  # was 180 pixels high: no tiles, no face
    assert factor == pytest.approx(small.shape[1] / 5120)
    usual, _ = downscale_for_detection(np.zeros((3000, 4000, 3), np.uint8), 1280)
    assert max(usual.shape[:2]) == 1280  # ordinary photos as before


def test_crop_names_never_collide():
    from exprsim.faces.pipeline import _free_stem

    used: set[str] = set()
    # a/x.jpg, a/x.png, b/x.jpg, c/x-2.jpg, then X.JPG (case-insensitive disks)
    got = [_free_stem(s, used) for s in ("x", "x", "x", "x-2", "X")]
    assert len({g.lower() for g in got}) == 5 and got[:3] == ["x", "x-2", "x-3"]


def test_worker_counts_are_capped(caplog):
    from exprsim.faces.litert import available_cores
    from exprsim.faces.stream import WORKERS_PER_CORE, cap_workers

    most = WORKERS_PER_CORE * available_cores()
    assert cap_workers(100_000) == most and "workers asked for" in caplog.text
    assert cap_workers(0) == 1 and cap_workers(1) == 1


def test_three_copies_have_no_odd_one_out(random_embedder):
    from exprsim.apps.compare import compare_images
    from exprsim.samples import sample_path

    same = [sample_path("grace_hopper.jpg")] * 3
    assert compare_images(same, embedder=random_embedder).odd_one_out is None  # was 0
    mixed = [*same[:2], sample_path("astronaut_eileen_collins.jpg")]
    assert compare_images(mixed, embedder=random_embedder).odd_one_out == 2


def test_demo_fails_when_it_cannot_write_its_crops(tmp_path, monkeypatch):
    import cv2

    from exprsim.demo import run_demo

    monkeypatch.setattr(cv2, "imwrite", lambda *a, **k: False)  # what OpenCV does on EACCES
    with pytest.raises(OSError, match="cannot write"):
        run_demo(tmp_path / "demo", progress=False)  # was: success, and no crop on disk
