"""Upside-down crops: the orientation check (against torch, on the bundled photos) and what
``analyze_image`` does with a photo turned by 180 degrees (the fifth robustness round)."""

from __future__ import annotations

import numpy as np
import pytest

from exprsim.faces.orientation import load_weights, upright_probability, upside_down
from exprsim.faces.types import Face
from exprsim.samples import sample_path

PHOTOS = ("grace_hopper.jpg", "pexels_langer_frame000.jpg", "pexels_langer_frame216.jpg")


def test_numpy_network_matches_torch():
    torch = pytest.importorskip("torch")
    from exprsim.faces.orientation import prepare, torch_network

    weights = load_weights()
    net = torch_network()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items() if k != "report"})
    net.eval()
    crops = np.random.default_rng(0).integers(0, 256, (5, 112, 112, 3), dtype=np.uint8)
    with torch.no_grad():
        want = torch.sigmoid(net(torch.from_numpy(prepare(crops)))[:, 0]).numpy()
    np.testing.assert_allclose(upright_probability(crops), want, rtol=1e-4, atol=1e-5)
    assert upright_probability(np.zeros((0, 112, 112, 3), np.uint8)).shape == (0,)


@pytest.fixture(scope="module")
def upright_faces():
    from exprsim.faces.pipeline import analyze_image
    from exprsim.io import load_image

    out = {}
    for name in PHOTOS:
        image = load_image(sample_path(name))
        faces = analyze_image(image)
        assert faces and faces[0].quality.ok
        out[name] = (image, faces[0])
    return out


def test_upright_crops_pass_and_turned_crops_do_not(upright_faces):
    crops = np.stack([f.crop for _, f in upright_faces.values()])
    assert (upright_probability(crops) > 0.5).all() and not upside_down(crops).any()
    turned = np.ascontiguousarray(crops[:, ::-1, ::-1])
    assert (upright_probability(turned) < 0.5).all() and upside_down(turned).all()


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.astype(np.float64).ravel(), b.astype(np.float64).ravel())[0, 1])


@pytest.mark.parametrize("name", PHOTOS)
def test_a_photo_turned_upside_down(upright_faces, name):
    """Every face the pipeline accepts in a photo turned by 180 degrees has an upright crop,
    and where the detector finds the portrait's face, it is aligned as in the upright photo
    (before: such crops came out upside down and passed quality). In the turned Grace
    Hopper photo the detector finds no face at all, before and now."""
    from exprsim.faces.pipeline import analyze_image

    image, upright = upright_faces[name]
    faces = analyze_image(np.ascontiguousarray(image[::-1, ::-1]))
    accepted = [f for f in faces if f.quality.ok]
    if accepted:
        assert not upside_down(np.stack([f.crop for f in accepted])).any()
    if name.startswith("pexels"):
        best = max((_corr(f.crop, upright.crop) for f in accepted), default=0.0)
        assert best > 0.9  # the same aligned face, not a turned one (turned: below 0.6)
        assert _corr(upright.crop[::-1, ::-1], upright.crop) < 0.6


def test_turned_back_maps_pixel_centres():
    from exprsim.faces.pipeline import _turned_back

    face = Face(
        np.array([10, 20, 50, 80], np.float32),
        0.9,
        np.array([[20, 30], [40, 30], [30, 45], [22, 60], [38, 60]], np.float32),
    )
    back = _turned_back(face, 100, 200)
    np.testing.assert_allclose(back.box, [50, 120, 90, 180])
    np.testing.assert_allclose(back.landmarks[0], [99 - 20, 199 - 30])
    again = _turned_back(back, 100, 200)
    np.testing.assert_allclose(again.box, face.box)
    np.testing.assert_allclose(again.landmarks, face.landmarks)
    assert face.landmarks[0, 0] == 20  # the input is not changed


def test_a_crop_left_upside_down_is_rejected(monkeypatch):
    """When the face is not found again in the turned image, it is kept but rejected."""
    from exprsim.faces import pipeline
    from exprsim.io import load_image

    image = load_image(sample_path("grace_hopper.jpg"))
    upright = pipeline.analyze_image(image)
    assert upright and upright[0].quality.ok

    class NoSecondLook:
        name = "stub"

        def __init__(self, faces):
            self.faces, self.calls = faces, 0

        def detect(self, im):
            self.calls += 1
            return self.faces if self.calls == 1 else []

    w, h = image.shape[1], image.shape[0]
    turned = pipeline._turned_back(upright[0].face, w, h)  # the face as seen when turned
    bad = Face(turned.box, 0.9, turned.landmarks[[4, 3, 2, 1, 0]])  # mouth labelled as eyes
    det = NoSecondLook([bad])
    faces = pipeline.analyze_image(np.ascontiguousarray(image[::-1, ::-1]), det)
    assert det.calls == 2  # a second look, in the image turned back
    assert len(faces) == 1 and not faces[0].quality.ok
    assert "upside_down" in faces[0].quality.reasons


def test_products_run_in_blocks_blas_keeps_on_one_thread():
    """Every product is cut into row blocks under OpenBLAS's threading threshold (a threaded
    one leaves BLAS threads spinning beside the other face stages), with the same result."""
    from exprsim.faces import orientation

    rng = np.random.default_rng(0)
    for m, k, n in ((2048, 9, 8), (1024, 72, 16), (300, 144, 32), (7, 288, 32), (5, 3, 2)):
        a, b = (
            rng.normal(size=(m, k)).astype(np.float32),
            rng.normal(size=(k, n)).astype(np.float32),
        )
        np.testing.assert_allclose(orientation._matmul(a, b), a @ b, rtol=1e-5, atol=1e-5)
        rows = orientation.block_rows(k, n)
        assert rows >= 1 and (rows == 1 or rows * k * n < 4 * 65536)
    assert orientation.block_rows(72, 16) == 227  # 227 * 72 * 16 = 261,504 < 262,144


def _turned_photo_and_faces():
    """Grace Hopper turned by 180 degrees; her face there labelled the wrong way up (as a
    detector does: mouth corners as eyes); her face in the upright photo (what a detector
    finds when the turned photo is turned back)."""
    from exprsim.faces import pipeline
    from exprsim.io import load_image

    image = load_image(sample_path("grace_hopper.jpg"))
    upright = pipeline.analyze_image(image)[0].face
    h, w = image.shape[:2]
    right = pipeline._turned_back(upright, w, h)  # her face in the turned image
    wrong = Face(right.box, 0.9, right.landmarks[[4, 3, 2, 1, 0]])
    return np.ascontiguousarray(image[::-1, ::-1]), wrong, upright


class _Stub:
    """First call: ``first``; later calls: ``later`` (the look at the turned image)."""

    name = "stub"

    def __init__(self, first, later):
        self.first, self.later, self.calls = first, later, 0

    def detect(self, image):
        self.calls += 1
        return self.first if self.calls == 1 else self.later


def test_the_second_look_uses_the_unguided_detector():
    """A per-frame wrapper of guided detection searches near the upright frame's faces; the
    look at the turned image goes to its plain detector (``unguided``)."""
    from exprsim.faces.pipeline import analyze_image

    turned, wrong, upright = _turned_photo_and_faces()
    plain = _Stub([upright], [upright])  # it is given the turned photo turned back

    class Guided:
        name = "guided"
        unguided = plain

        def detect(self, image):
            return [wrong]

    faces = analyze_image(turned, Guided())
    assert plain.calls == 1 and len(faces) == 1 and faces[0].quality.ok
    assert not upside_down(faces[0].crop[None])[0]


def test_two_flagged_faces_do_not_become_one_face_twice():
    from exprsim.faces.pipeline import analyze_image

    turned, wrong, upright = _turned_photo_and_faces()
    shifted = Face(wrong.box + 3, 0.8, wrong.landmarks + 3)
    nan = Face(np.full(4, np.nan, np.float32), 0.9, np.full((5, 2), np.nan, np.float32))
    faces = analyze_image(turned, _Stub([wrong, shifted], [nan, upright]))
    ok = [f for f in faces if f.quality.ok]
    assert len(faces) == 2 and len(ok) == 1  # one face found again, not two copies
    (rejected,) = [f for f in faces if not f.quality.ok]
    assert rejected.quality.reasons[-1] == "upside_down"
    assert np.isfinite(ok[0].face.box).all()  # the NaN detection is ignored


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((2, 112, 112, 3), np.float32),  # floats in [0, 1] were cast to 0
        np.zeros((112, 112, 3), np.uint8),  # one crop without its batch axis: 112 answers
        np.zeros((2, 112, 112, 1), np.uint8),
        np.zeros((2, 112, 96, 3), np.uint8),
        np.zeros((2, 112, 112, 3), np.uint16),
    ],
)
def test_crops_of_the_wrong_kind_are_refused(bad):
    with pytest.raises(ValueError, match="crops must be uint8"):
        upright_probability(bad)


def test_the_check_can_be_turned_off(upright_faces):
    """``QualityConfig(check_orientation=False)`` leaves the crop as the alignment made it
    (the speed of the pipeline before the check, and its upside-down crops)."""
    from exprsim.faces.pipeline import analyze_image
    from exprsim.faces.quality import QualityConfig

    image, _ = upright_faces["pexels_langer_frame000.jpg"]
    turned = np.ascontiguousarray(image[::-1, ::-1])
    off = [f for f in analyze_image(turned, quality_config=QualityConfig(check_orientation=False))]
    on = analyze_image(turned)
    assert off and upside_down(np.stack([f.crop for f in off])).any()
    assert not upside_down(np.stack([f.crop for f in on if f.quality.ok])).any()
