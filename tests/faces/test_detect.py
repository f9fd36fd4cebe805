"""Detector registry, shared machinery, and every backend on the bundled photos."""

from __future__ import annotations

import importlib.util

import cv2
import numpy as np
import pytest

from exprsim.errors import BackendUnavailableError, ExprsimError
from exprsim.faces import detect
from exprsim.faces.detect import (
    BaseDetector,
    Candidate,
    Detector,
    box_inside,
    box_iou,
    create_detector,
    detector_info,
    downscale_for_detection,
    list_detectors,
    nms,
    register_detector,
    scale_points,
)
from exprsim.faces.landmarks import MESH_LEFT_EYE, MESH_RIGHT_EYE, face_mesh, mesh_to_five
from exprsim.samples import sample_images

from .conftest import HAND_CHECKED

# ----------------------------------------------------------------------------- registry


def test_registry_lists_every_backend():
    assert {"mediapipe", "haar", "dlib", "mtcnn"} <= set(list_detectors())
    info = {r.name: r for r in detector_info()}
    assert info["mediapipe"].available and info["haar"].available
    assert all(r.description for r in info.values())
    assert set(info["haar"].to_dict()) == {"name", "available", "description", "install"}
    assert set(list_detectors(available_only=True)) == {n for n, r in info.items() if r.available}


def test_unknown_detector_is_a_typed_error():
    with pytest.raises(ExprsimError, match="unknown detector 'nope'"):
        create_detector("nope")


def test_register_custom_detector_and_duplicates(monkeypatch):
    monkeypatch.setattr(detect, "_REGISTRY", dict(detect._REGISTRY))

    @register_detector("fixed", "always one face")
    class Fixed(BaseDetector):
        name = "fixed"

        def propose(self, image):
            return [Candidate(np.array([1.0, 1.0, 9.0, 9.0]), 0.5, np.full((5, 2), 5.0))]

    det = create_detector("fixed")
    assert isinstance(det, Detector)
    assert len(det.detect(np.zeros((20, 20, 3), np.uint8))) == 1
    with pytest.raises(ValueError, match="already registered"):
        register_detector("fixed", "again")(lambda: det)


def test_dlib_missing_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "dlib" else real(name, *a)
    )
    with pytest.raises(BackendUnavailableError, match=r"pip install 'exprsim\[dlib\]'"):
        create_detector("dlib")
    row = next(r for r in detector_info() if r.name == "dlib")
    assert not row.available and "exprsim[dlib]" in row.install


def test_dlib_models_missing_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "face_recognition_models" else real(name, *a),
    )
    with pytest.raises(BackendUnavailableError, match=r"exprsim\[dlib\]"):
        create_detector("dlib")


@pytest.mark.skipif(
    importlib.util.find_spec("facenet_pytorch") is not None
    or importlib.util.find_spec("mtcnn") is not None,
    reason="an MTCNN package is installed here",
)
def test_mtcnn_unavailable_without_package():
    row = next(r for r in detector_info() if r.name == "mtcnn")
    assert not row.available and "facenet" in row.install
    with pytest.raises(BackendUnavailableError):
        create_detector("mtcnn")


# ------------------------------------------------------------------------------ helpers


def test_box_iou_and_nms_match_naive_loops():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 100, (30, 2))
    wh = rng.uniform(5, 40, (30, 2))
    boxes = np.hstack([xy, xy + wh])
    scores = rng.uniform(0, 1, 30)

    def iou(a, b):
        ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = ix * iy
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

    ref = np.array([[iou(a, b) for b in boxes] for a in boxes])
    assert np.allclose(box_iou(boxes, boxes), ref)
    keep_ref = []
    for i in np.argsort(-scores):
        if all(ref[i, j] <= 0.3 for j in keep_ref):
            keep_ref.append(int(i))
    assert nms(boxes, scores, 0.3, nested=None) == keep_ref

    def inside(a, b):  # share of b's area inside a
        ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        return ix * iy / ((b[2] - b[0]) * (b[3] - b[1]))

    nest = np.array([[inside(a, b) for b in boxes] for a in boxes])
    assert np.allclose(box_inside(boxes, boxes), nest)
    keep_ref = []
    for i in np.argsort(-scores):
        if all(ref[j, i] <= 0.3 and nest[j, i] <= 0.8 for j in keep_ref):
            keep_ref.append(int(i))
    assert nms(boxes, scores, 0.3) == keep_ref


def test_a_box_nested_in_a_better_face_box_is_dropped():
    """The tilted-face case of the fourth round: IoU 0.25, 87% inside the better box."""
    face, part = [127, 172, 292, 338], [170, 162, 247, 239]
    assert box_iou(np.array(face), np.array(part))[0, 0] < 0.3
    assert nms(np.array([face, part]), [0.93, 0.78]) == [0]
    assert nms(np.array([face, part]), [0.93, 0.78], nested=None) == [0, 1]
    apart = [400, 172, 480, 250]  # another face beside it stays
    assert nms(np.array([face, apart]), [0.93, 0.78]) == [0, 1]
    # a small face held in front of a bigger one, and better scored: both stay (the
    # big box is not "inside" the small one)
    adult, child = [100, 100, 300, 300], [170, 190, 260, 290]
    assert nms(np.array([adult, child]), [0.7, 0.9]) == [1, 0]


def test_downscale_and_map_back():
    img = np.zeros((3000, 2000, 3), np.uint8)
    small, f = downscale_for_detection(img, 1280)
    assert max(small.shape[:2]) == 1280 and f == pytest.approx(small.shape[1] / 2000)
    same, f1 = downscale_for_detection(img[:500, :400], 1280)
    assert f1 == 1.0 and same.shape == (500, 400, 3)
    # pixel centres: a point in the small image maps to the matching full-res point
    assert scale_points(np.array([[0.0, 0.0]]), 0.5)[0] == pytest.approx([0.5, 0.5])


class _Fake(BaseDetector):
    """Reports one face at a fixed place of whatever image it is given (relative coords)."""

    name = "fake"

    def __init__(self, landmarks=True, **kw):
        super().__init__(**kw)
        self.seen_shape = None
        self.with_landmarks = landmarks

    def propose(self, image):
        h, w = image.shape[:2]
        self.seen_shape = image.shape
        box = np.array([0.25 * w, 0.25 * h, 0.75 * w, 0.75 * h])  # edges
        lm = np.array([[0.5 * w - 0.5, 0.5 * h - 0.5]] * 5)
        return [Candidate(box, 0.8, lm if self.with_landmarks else None, lm)]


def test_base_detector_downscales_and_maps_back():
    det = _Fake(max_side=1000)
    faces = det.detect(np.zeros((2000, 4000, 3), np.uint8))
    assert det.seen_shape == (500, 1000, 3)
    (face,) = faces
    assert face.box == pytest.approx([1000, 500, 3000, 1500], abs=1e-3)
    assert face.landmarks[0] == pytest.approx([1999.5, 999.5], abs=1e-3)
    assert face.detector == "fake" and face.landmarks.dtype == np.float32


class _NoFace:
    name = "none"

    def landmarks(self, image, box):
        return None


def test_landmark_failure_policy():
    img = np.zeros((100, 100, 3), np.uint8)
    kept = _Fake(landmarks=False, landmarker=_NoFace()).detect(img)
    assert len(kept) == 1 and kept[0].landmarks[0] == pytest.approx([49.5, 49.5])
    dropped = _Fake(landmarks=False, landmarker=_NoFace(), on_landmark_failure="drop").detect(img)
    assert dropped == []


# ------------------------------------------------------------------- real detectors


def lm_error(found: np.ndarray, expected: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.asarray(found, float) - expected, axis=1)


def test_default_detector_finds_each_sample_face(mp_detector, load_sample):
    for path in sample_images():
        faces = mp_detector.detect(load_sample(path.name))
        assert len(faces) == 1, path.name
        f = faces[0]
        assert f.score > 0.5 and f.detector == "mediapipe"
        x1, y1, x2, y2 = f.box
        assert np.all((f.landmarks[:, 0] > x1) & (f.landmarks[:, 0] < x2)), path.name
        assert np.all((f.landmarks[:, 1] > y1) & (f.landmarks[:, 1] < y2)), path.name


@pytest.mark.parametrize("name", sorted(HAND_CHECKED))
def test_face_mesh_landmarks_match_hand_checked(mesh_detector, load_sample, name):
    """``mediapipe-mesh`` (face-mesh graph): within 5 px of the hand-checked points, under
    3 px on average."""
    assert mesh_detector.landmarks_kind == "mesh"
    (face,) = mesh_detector.detect(load_sample(name))
    err = lm_error(face.landmarks, HAND_CHECKED[name])
    assert err.max() < 5.0, err.round(1)
    assert err.mean() < 3.0, err.round(1)


def test_large_image_is_downscaled_and_mapped_back(mp_detector, load_sample):
    name = "grace_hopper.jpg"
    big = cv2.resize(load_sample(name), None, fx=5.0, fy=5.0, interpolation=cv2.INTER_CUBIC)
    assert max(big.shape[:2]) > mp_detector.max_side
    (face,) = mp_detector.detect(big)
    expected = (HAND_CHECKED[name] + 0.5) * 5.0 - 0.5
    assert lm_error(face.landmarks, expected).max() < 5.0 * 5


@pytest.mark.parametrize("rng_name", ["short", "full", "auto"])
def test_mediapipe_ranges(load_sample, rng_name):
    det = create_detector("mediapipe", range=rng_name, landmarks="keypoints")
    name = "grace_hopper.jpg"
    (face,) = det.detect(load_sample(name))
    # keypoint landmarks: eyes from BlazeFace are good; nose and mouth are approximations
    err = lm_error(face.landmarks, HAND_CHECKED[name])
    assert err[:2].max() < 8.0
    assert err.max() < 30.0
    det.close()


def test_mediapipe_fast_preset(load_sample, mp_detector):
    """One short-range pass, no tiles: the same face and landmark model as the default."""
    det = create_detector("mediapipe-fast")
    assert det.name == "mediapipe-fast" and det.range == "short" and not det.tiles
    assert det.landmarks_kind == mp_detector.landmarks_kind
    name = "grace_hopper.jpg"
    (face,) = det.detect(load_sample(name))
    (ref,) = mp_detector.detect(load_sample(name))
    assert face.detector == "mediapipe-fast"
    assert lm_error(face.landmarks, HAND_CHECKED[name]).max() < 8.0
    np.testing.assert_allclose(face.box, ref.box, atol=6.0)
    det.close()


@pytest.mark.parametrize("backend", ["mediapipe", "haar", "dlib"])
@pytest.mark.parametrize("name", ["astronaut_eileen_collins.jpg", "grace_hopper.jpg"])
def test_each_backend_finds_the_face(backend, name, load_sample, mp_detector):
    if backend not in list_detectors(available_only=True):
        pytest.skip(f"{backend} is not installed here")
    det = mp_detector if backend == "mediapipe" else _backend(backend)
    faces = det.detect(load_sample(name))
    expected = HAND_CHECKED[name]
    centre = expected[:2].mean(axis=0)
    hits = [f for f in faces if f.box[0] < centre[0] < f.box[2] and f.box[1] < centre[1] < f.box[3]]
    assert len(hits) == 1, f"{backend} on {name}: {[f.box for f in faces]}"
    eye_dist = np.linalg.norm(expected[1] - expected[0])
    assert lm_error(hits[0].landmarks, expected).mean() < 0.12 * eye_dist


_BACKENDS: dict[str, Detector] = {}


def _backend(name: str) -> Detector:
    if name not in _BACKENDS:
        _BACKENDS[name] = create_detector(name)
    return _BACKENDS[name]


def test_no_face_in_noise(mp_detector):
    rng = np.random.default_rng(0)
    assert mp_detector.detect(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)) == []


def test_face_mesh_and_its_five_points(mesh_detector, load_sample):
    image = load_sample("pexels_langer_frame000.jpg")
    (face,) = mesh_detector.detect(image)
    mesh = face_mesh(image, face)
    assert mesh.shape == (478, 3) and mesh.dtype == np.float32
    assert np.allclose(mesh_to_five(mesh), face.landmarks, atol=0.05)
    # image-left eye really is on the left, mouth below nose below eyes
    assert mesh[list(MESH_RIGHT_EYE), 0].mean() < mesh[list(MESH_LEFT_EYE), 0].mean()
    five = face.landmarks
    assert five[:2, 1].max() < five[2, 1] < five[3:, 1].min()


def test_mesh_to_five_indices():
    mesh = np.zeros((478, 3))
    mesh[list(MESH_RIGHT_EYE), :2] = [10, 20]
    mesh[list(MESH_LEFT_EYE), :2] = [30, 20]
    mesh[1, :2] = [20, 30]
    mesh[61, :2] = [12, 40]
    mesh[291, :2] = [28, 40]
    assert mesh_to_five(mesh).tolist() == [[10, 20], [30, 20], [20, 30], [12, 40], [28, 40]]
    with pytest.raises(ValueError):
        mesh_to_five(np.zeros((68, 2)))


def test_mediapipe_tiles_cover_image_and_drop_cut_faces(monkeypatch):
    from exprsim.faces.backends.mediapipe import MediaPipeDetector

    det = MediaPipeDetector(landmarks="keypoints")
    calls = []

    def fake_run(selection, image, x0=0, y0=0):
        calls.append((selection, x0, y0, image.shape[:2]))
        w = image.shape[1]
        # one face well inside the tile, one touching the tile's right edge, one weak
        inside = Candidate(np.array([x0 + 10, y0 + 10, x0 + 50, y0 + 50.0]), 0.9, None, None)
        cut = Candidate(np.array([x0 + w - 30, y0 + 100, x0 + w, y0 + 130.0]), 0.9, None, None)
        weak = Candidate(np.array([x0 + 100, y0 + 100, x0 + 140, y0 + 140.0]), 0.6, None, None)
        return [inside, cut, weak]

    monkeypatch.setattr(det, "_run", fake_run)
    kept = det._tiled(np.zeros((480, 640, 3), np.uint8))
    tiles = [(x0, y0) for _, x0, y0, _ in calls]
    assert sorted(tiles) == sorted((x, y) for x in (0, 160, 320) for y in (0, 160))
    assert all(shape == (320, 320) and sel == 0 for sel, _, _, shape in calls)
    # cut faces are kept only at the image border (x0 = 320 reaches it); weak ones never
    assert len(kept) == 6 + 2
    assert all(c.score >= det.tile_min_confidence for c in kept)


@pytest.mark.parametrize(
    ("shape", "options", "selection", "side", "n_tiles"),
    [
        ((480, 640), {}, 0, 320, 6),  # small image: short range, 2/3 of the shorter side
        ((960, 1280), {}, 1, 400, 24),  # a 12-MP photo as detection sees it: full range
        ((720, 1280), {}, 1, 400, 18),  # an HD frame
        ((960, 1280), {"tile_model": "short", "max_tile": 320}, 0, 320, 35),
        ((960, 1280), {"max_tile": None}, 1, 640, 6),
        ((480, 640), {"tile_model": "full"}, 1, 320, 6),
    ],
)
def test_large_images_get_the_full_range_model_on_smaller_tiles(
    monkeypatch, shape, options, selection, side, n_tiles
):
    from exprsim.faces.backends.mediapipe import MediaPipeDetector

    det = MediaPipeDetector(landmarks="keypoints", **options)
    calls = []

    def fake_run(sel, image, x0=0, y0=0):
        calls.append((sel, x0, y0, image.shape[:2]))
        return []

    monkeypatch.setattr(det, "_run", fake_run)
    det._tiled(np.zeros((*shape, 3), np.uint8))
    assert det.tile_plan(np.zeros((*shape, 3), np.uint8)) == (selection, side)
    assert len(calls) == n_tiles and {c[0] for c in calls} == {selection}
    assert {c[3] for c in calls} == {(side, side)}
    h, w = shape  # the tiles cover the image: right and bottom edges reached
    assert max(x0 for _, x0, _, _ in calls) == w - side
    assert max(y0 for _, _, y0, _ in calls) == h - side


def test_an_unknown_tile_model_is_refused():
    from exprsim.faces.backends.mediapipe import MediaPipeDetector

    with pytest.raises(ValueError, match="tile_model"):
        MediaPipeDetector(landmarks="keypoints", tile_model="medium")


def _script_passes(monkeypatch, det, face_on, score=0.9):
    """Replace ``det``'s model passes: each records ``(selection, x0, y0)`` and returns one
    face scoring ``score`` where ``face_on(selection, x0, y0)`` gives its box side
    (``None``: nothing)."""
    calls = []

    def fake_run(selection, image, x0=0, y0=0):
        calls.append((selection, x0, y0))
        side = face_on(selection, x0, y0)
        if side is None:
            return []
        box = np.array([100.0, 100.0, 100.0 + side, 100.0 + 1.2 * side])
        return [Candidate(box, score, None, np.zeros((5, 2)))]

    monkeypatch.setattr(det, "_run", fake_run)
    return calls


@pytest.mark.parametrize(
    ("short_side", "escalate_below", "expect_more"),
    [
        (240.0, 0.35, False),  # a 240 px face in a 640x480 image: the short range settles it
        (200.0, 0.35, True),  # 200 px < 0.35 x 640: full range and tiles too
        (240.0, None, True),  # escalation off: every pass, always
        (None, 0.35, True),  # nothing found at short range
    ],
)
def test_mediapipe_passes_escalate_only_for_small_or_missing_faces(
    monkeypatch, short_side, escalate_below, expect_more
):
    from exprsim.faces.backends.mediapipe import MediaPipeDetector

    det = MediaPipeDetector(landmarks="keypoints", escalate_below=escalate_below)
    calls = _script_passes(  # only the short-range pass on the whole image finds the face
        monkeypatch, det, lambda sel, x0, y0: short_side if (sel, x0, y0) == (0, 0, 0) else None
    )
    det.propose(np.zeros((480, 640, 3), np.uint8))
    assert calls[0] == (0, 0, 0)  # the short-range pass on the whole image always comes first
    more = calls[1:]
    assert bool(more) == expect_more
    if expect_more:
        assert (1, 0, 0) in more and sum(c[0] == 0 for c in more) == 6  # full range + 6 tiles


@pytest.mark.parametrize(
    ("score", "close_up_min_score", "expect_more"),
    [
        (0.9, 0.65, False),  # a confident 240 px face settles a 640x480 image
        (0.6, 0.65, True),  # a weak one does not: full range and tiles run
        (0.65, 0.65, False),  # exactly the threshold is enough
        (0.6, 0.0, False),  # gate off: any face settles (the behaviour before)
    ],
)
def test_only_a_confident_face_settles_a_close_up(
    monkeypatch, score, close_up_min_score, expect_more
):
    """Audit: a background blob taken for a 530-px face at 0.51 settled a 12-MP photo as a
    close-up, so a real 90-px face in it was never searched for."""
    from exprsim.faces.backends.mediapipe import MediaPipeDetector

    det = MediaPipeDetector(landmarks="keypoints", close_up_min_score=close_up_min_score)
    calls = _script_passes(
        monkeypatch, det, lambda sel, x0, y0: 240.0 if (sel, x0, y0) == (0, 0, 0) else None, score
    )
    det.propose(np.zeros((480, 640, 3), np.uint8))
    assert (len(calls) > 1) == expect_more


def _cand(box, score):
    return Candidate(np.array(box, dtype=np.float64), score, None, np.zeros((5, 2)))


def test_weak_boxes_around_better_ones_are_dropped():
    from exprsim.faces.backends.mediapipe import _drop_weak_enclosing

    tight = _cand([100, 100, 130, 130], 0.9)
    loose = _cand([85, 90, 150, 155], 0.6)  # holds all of `tight`: IoU 0.21, kept by nms
    assert box_iou(tight.box[None], loose.box[None])[0, 0] < 0.3
    assert _drop_weak_enclosing([tight, loose], 0.65) == [tight]
    strong = _cand([85, 90, 150, 155], 0.8)  # a confident bigger face stays (face in front)
    assert _drop_weak_enclosing([tight, strong], 0.65) == [tight, strong]
    apart = _cand([300, 300, 360, 360], 0.6)  # a weak box holding nothing stays
    assert _drop_weak_enclosing([tight, apart], 0.65) == [tight, apart]
    half = _cand([115, 100, 180, 165], 0.6)  # holds half of `tight`: not the same face
    assert _drop_weak_enclosing([tight, half], 0.65) == [tight, half]
    worse = _cand([105, 105, 125, 125], 0.5)  # only better-scored boxes count
    assert _drop_weak_enclosing([loose, worse], 0.65) == [loose, worse]


def test_a_loose_full_range_box_and_a_tile_box_of_one_face_give_one_face(monkeypatch):
    from exprsim.faces.backends.mediapipe import MediaPipeDetector

    det = MediaPipeDetector(landmarks="keypoints")

    def fake_run(selection, image, x0=0, y0=0):
        if (selection, x0, y0) == (1, 0, 0):  # the whole-image full-range pass
            return [_cand([85, 90, 150, 155], 0.6)]
        if (x0, y0) == (0, 0):  # the first tile
            return [_cand([100, 100, 130, 130], 0.9)]
        return []

    monkeypatch.setattr(det, "_run", fake_run)
    (face,) = det.propose(np.zeros((480, 640, 3), np.uint8))
    assert face.score == 0.9


def test_escalate_below_is_checked():
    from exprsim.faces.backends.mediapipe import MediaPipeDetector

    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="escalate_below"):
            MediaPipeDetector(landmarks="keypoints", escalate_below=bad)
        with pytest.raises(ValueError, match="tiles_below"):
            MediaPipeDetector(landmarks="keypoints", tiles_below=bad)


@pytest.mark.parametrize(
    ("full_side", "tiles_below", "expect_tiles"),
    [
        (150.0, 0.25, True),  # the full range found a 150 px face: 150 < 0.25 x 640, tiles run
        (200.0, 0.25, False),  # 200 px >= 160 px: the whole-image passes settle it
        (180.0, 0.3, True),  # 180 < 192
        (200.0, 0.3125, False),  # exactly 0.3125 x 640 = 200 (the box's shorter side): enough
        (170.0, None, True),  # gate off: tiles whenever the image escalated
        (None, 0.25, True),  # nothing found by the whole-image passes
    ],
)
def test_tiles_after_escalation_only_for_small_or_missing_faces(
    monkeypatch, full_side, tiles_below, expect_tiles
):
    from exprsim.faces.backends.mediapipe import MediaPipeDetector

    det = MediaPipeDetector(landmarks="keypoints", tiles_below=tiles_below)
    calls = _script_passes(  # only the full-range pass finds the face
        monkeypatch, det, lambda sel, x0, y0: full_side if sel == 1 else None
    )
    det.propose(np.zeros((480, 640, 3), np.uint8))
    assert calls[:2] == [(0, 0, 0), (1, 0, 0)]  # escalated: short range found nothing
    assert (len(calls) == 2 + 6) == expect_tiles


def test_a_large_face_found_by_the_full_range_spares_the_tiles(monkeypatch):
    from exprsim.faces.backends.mediapipe import MediaPipeDetector

    det = MediaPipeDetector(landmarks="keypoints", tiles_below=0.25)
    calls = _script_passes(monkeypatch, det, lambda sel, x0, y0: 170.0 if sel == 1 else None)
    faces = det.propose(np.zeros((480, 640, 3), np.uint8))
    assert calls == [(0, 0, 0), (1, 0, 0)] and len(faces) == 1  # 170 px >= 0.25 x 640: no tiles


# ------------------------------------------------------------------- mesh-lite landmarker

lite_only = pytest.mark.skipif(
    importlib.util.find_spec("ai_edge_litert") is None, reason="LiteRT (ai-edge-litert) missing"
)


@lite_only
@pytest.mark.parametrize("name", sorted(HAND_CHECKED))
def test_default_landmarks_match_hand_checked_and_the_mesh(
    mp_detector, mesh_detector, load_sample, name
):
    """The default's landmark model (mesh-lite): within 5 px of the hand-checked points, a
    mean under 3.2 px (the face mesh's own test: 3.0; measured 1.2-3.1 px, 2.4 on average,
    against the mesh's 1.4-2.0), and within 7% of the eye distance of the face mesh's
    points."""
    assert mp_detector.landmarks_kind == "mesh-lite"
    (lite,) = mp_detector.detect(load_sample(name))
    (ref,) = mesh_detector.detect(load_sample(name))
    err = lm_error(lite.landmarks, HAND_CHECKED[name])
    assert err.max() < 5.0 and err.mean() < 3.2, err.round(1)
    eye_dist = np.linalg.norm(ref.landmarks[1] - ref.landmarks[0])
    assert lm_error(lite.landmarks, ref.landmarks).max() < 0.07 * eye_dist


def test_mesh_lite_roi_levels_the_eyes_and_centres_the_box():
    from exprsim.faces.landmarks import LITE_MESH_INPUT, LiteMeshLandmarker

    lm = LiteMeshLandmarker.__new__(LiteMeshLandmarker)  # geometry only: no interpreter
    lm.scale = 1.5
    box = np.array([100.0, 50.0, 180.0, 150.0])  # 80 x 100: the ROI side is 150
    eyes = np.array([[120.0, 80.0], [160.0, 100.0]])  # tilted by atan(0.5)
    m = lm.roi_transform(box, eyes)
    to_crop = eyes @ m[:, :2].T + m[:, 2]
    assert to_crop[0, 1] == pytest.approx(to_crop[1, 1])  # levelled
    assert to_crop[1, 0] > to_crop[0, 0]  # not mirrored
    centre = m[:, :2] @ np.array([140.0, 100.0]) + m[:, 2]
    assert centre == pytest.approx([(LITE_MESH_INPUT - 1) / 2] * 2)
    assert np.linalg.det(m[:, :2]) == pytest.approx((LITE_MESH_INPUT / 150.0) ** 2)
    upright = lm.roi_transform(box, None)
    assert upright[0, 1] == 0.0 and upright[1, 0] == 0.0


@lite_only
def test_mesh_lite_refuses_noise_and_says_what_is_missing(monkeypatch):
    from exprsim.faces import landmarks as lmod

    lite = lmod.LiteMeshLandmarker()
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)
    assert lite.landmarks(noise, np.array([50.0, 50.0, 150.0, 150.0])) is None
    real = importlib.util.find_spec
    monkeypatch.setattr(
        lmod.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "ai_edge_litert" else real(name, *a),
    )
    assert "ai-edge-litert" in (lmod.lite_mesh_probe() or "")
    with pytest.raises(BackendUnavailableError, match="mesh-lite"):
        lmod.LiteMeshLandmarker()
    from exprsim.faces.backends.mediapipe import MediaPipeDetector

    fallback = MediaPipeDetector(landmarks="auto")
    assert fallback.landmarks_kind == "mesh"  # auto falls back to the face mesh graph


# ------------------------------------------------------------------- inference threads


def test_inference_threads_follow_the_process_cpu_set(monkeypatch):
    from exprsim.faces import litert

    monkeypatch.setattr(litert, "cpu_quota", lambda: None)
    monkeypatch.setattr(litert.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert litert.inference_threads() == 2
    monkeypatch.setattr(litert.os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert litert.inference_threads() == litert.MAX_INFERENCE_THREADS
    monkeypatch.setattr(litert, "cpu_quota", lambda: 1.5)  # e.g. docker --cpus 1.5
    assert litert.inference_threads() == 2
    monkeypatch.setattr(litert.os, "sched_getaffinity", lambda pid: {5}, raising=False)
    assert litert.inference_threads() == 1


def test_default_front_end_workers_follow_the_usable_cores(monkeypatch):
    from exprsim.faces import litert, stream

    monkeypatch.setattr(litert, "cpu_quota", lambda: None)
    monkeypatch.setattr(litert.os, "cpu_count", lambda: 64)  # the host's cores: not used
    monkeypatch.setattr(litert.os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert stream.default_workers() == 1  # e.g. taskset -c 3
    monkeypatch.setattr(litert.os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert stream.default_workers() == stream.MAX_DEFAULT_WORKERS
    monkeypatch.setattr(litert, "cpu_quota", lambda: 1.0)  # e.g. docker --cpus 1
    assert stream.default_workers() == 1
    assert litert.available_cores() == 1


def test_cpu_quota_reads_cgroup_v2_and_v1(tmp_path, monkeypatch):
    from exprsim.faces import litert

    v2, q1, p1 = tmp_path / "cpu.max", tmp_path / "quota", tmp_path / "period"
    monkeypatch.setattr(litert, "CGROUP_CPU_MAX", v2)
    monkeypatch.setattr(litert, "CGROUP_V1_QUOTA", q1)
    monkeypatch.setattr(litert, "CGROUP_V1_PERIOD", p1)
    assert litert.cpu_quota() is None  # no files: no limit
    q1.write_text("-1\n")
    p1.write_text("100000\n")
    assert litert.cpu_quota() is None  # v1 without a quota
    q1.write_text("250000\n")
    assert litert.cpu_quota() == 2.5
    v2.write_text("max 100000\n")  # v2 wins when present
    assert litert.cpu_quota() is None
    v2.write_text("150000 100000\n")
    assert litert.cpu_quota() == 1.5
    v2.write_text("garbage\n")
    assert litert.cpu_quota() is None


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2", 257, 100_000])
def test_mediapipe_threads_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError, match="threads"):
        create_detector("mediapipe", threads=bad)


def test_inference_threads_have_a_ceiling_told_when_made():
    """100,000 threads used to fail at the first detection, in XNNPACK's words; now
    refused when the detector is made, as threads=0 is; 256 is taken."""
    from exprsim.faces.detect import MAX_INFERENCE_THREADS

    assert create_detector("mediapipe-fast", threads=MAX_INFERENCE_THREADS).threads == 256
    for name in ("mediapipe", "mediapipe-fast", "dlib"):
        if name not in list_detectors(available_only=True):
            continue
        with pytest.raises(ValueError, match="inference_threads must be an integer from 1 to 256"):
            create_detector(name, inference_threads=MAX_INFERENCE_THREADS + 1)


def test_inference_threads_reach_mediapipe_detectors_only():
    for name in ("mediapipe", "mediapipe-fast", "mediapipe-mesh", "mediapipe-graph"):
        assert create_detector(name, inference_threads=3).threads == 3, name
        assert create_detector(name).threads == 1, name
    if "haar" in list_detectors(available_only=True):
        create_detector("haar", inference_threads=3)  # no such option: ignored


@lite_only
def test_shared_detector_uses_every_core_and_finds_the_same(mp_detector, load_sample):
    """resolve_detector's shared instance runs alone: every core for each inference; the
    front end's per-thread detectors keep one. More threads, same faces and points."""
    from exprsim.faces.litert import inference_threads
    from exprsim.faces.stream import _thread_detector

    assert mp_detector.threads == inference_threads()
    assert _thread_detector("mediapipe").threads == 1
    one = create_detector("mediapipe", threads=1)
    two = create_detector("mediapipe", threads=2)
    assert two.landmarker.threads == 2
    for name in ("grace_hopper.jpg", "astronaut_eileen_collins.jpg"):
        (a,) = one.detect(load_sample(name))
        (b,) = two.detect(load_sample(name))
        np.testing.assert_allclose(a.box, b.box, atol=0.05)
        np.testing.assert_allclose(a.landmarks, b.landmarks, atol=0.05)
