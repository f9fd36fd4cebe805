"""Ninth audit (the API as a long-lived library), face side: detectors are context managers
and refuse to work once closed (finding 10); a wrong detector option fails at creation with
an ``ExprsimError`` naming it, and ``align_face`` refuses bad landmarks with one (finding 9)."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

import exprsim
from exprsim.errors import ExprsimError
from exprsim.faces.align import align_face
from exprsim.faces.detect import BaseDetector, Candidate, check_detector, create_detector


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(exc.value)
    assert text and "\n" not in text, text
    return text


def available(name: str) -> bool:
    try:
        check_detector(name)
    except ExprsimError:
        return False
    return True


# ------------------------------------------------------------------ 10: close and with


BACKENDS = [
    ("mediapipe", {}),
    ("mediapipe", {"landmarks": "mesh-lite", "engine": "litert"}),
    ("mediapipe-fast", {}),
    ("mediapipe-mesh", {}),
    ("mediapipe-graph", {"landmarks": "keypoints"}),
    ("haar", {}),
    ("dlib", {}),
]


@pytest.mark.parametrize(("name", "kwargs"), BACKENDS)
def test_a_closed_detector_refuses_to_detect(load_sample, name, kwargs):
    """``with create_detector() as det`` was AttributeError: __enter__; after close(),
    detect() went on finding the same faces (the models were built again)."""
    if not available(name):
        pytest.skip(f"{name} is not installed here")
    image = load_sample("grace_hopper.jpg")
    with create_detector(name, **kwargs) as det:
        assert isinstance(det, BaseDetector)
        (face,) = det.detect(image)
    with pytest.raises(ExprsimError) as exc:
        det.detect(image)
    assert one_line(exc) == f"{name} detector is closed; create another"
    with pytest.raises(ExprsimError, match="detector is closed"):
        det.detect_near(image, face.box[None])
    det.close()  # twice: harmless


def test_closing_a_mediapipe_detector_releases_its_models(load_sample):
    det = create_detector("mediapipe", landmarks="mesh-lite", engine="litert")
    det.detect(load_sample("grace_hopper.jpg"))
    assert det._models and det.landmarker._interp is not None
    det.close()
    assert not det._models and det.landmarker._interp is None
    with pytest.raises(ExprsimError, match="detector is closed"):
        det._model(0)  # no model built again behind the user's back


class _Square(BaseDetector):
    """A backend that never calls ``BaseDetector.__init__``: the contract holds anyway."""

    name = "square"

    def __init__(self) -> None:
        self.max_side = None
        self.landmarker = None
        self.on_landmark_failure = "approximate"

    def propose(self, image: np.ndarray) -> list[Candidate]:
        lm = np.array([[10, 10], [20, 10], [15, 15], [11, 20], [19, 20]], float)
        return [Candidate(np.array([5.0, 5.0, 25.0, 25.0]), 0.9, lm)]


def test_the_base_detector_contract_covers_every_subclass():
    image = np.zeros((40, 40, 3), np.uint8)
    det = _Square()
    with det as entered:
        assert entered is det
        assert len(det.detect(image)) == 1
    with pytest.raises(ExprsimError) as exc:
        det.detect(image)
    assert one_line(exc) == "square detector is closed; create another"


class _FakeMTCNN:
    def __init__(self, **kwargs) -> None:
        self.kwargs = kwargs

    def detect(self, image, landmarks=True):
        box = np.array([[5.0, 5.0, 25.0, 25.0]])
        lm = np.array([[[10, 10], [20, 10], [15, 15], [11, 20], [19, 20]]], float)
        return box, np.array([0.99]), lm


@pytest.fixture
def fake_facenet(monkeypatch):
    """``facenet_pytorch`` is not installed here: a stand-in with its ``MTCNN``."""
    module = types.ModuleType("facenet_pytorch")
    module.MTCNN = _FakeMTCNN  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "facenet_pytorch", module)


def test_mtcnn_closes_like_the_others(fake_facenet):
    from exprsim.faces.backends.mtcnn import MTCNNDetector

    image = np.zeros((40, 40, 3), np.uint8)
    with MTCNNDetector() as det:
        assert len(det.detect(image)) == 1
    with pytest.raises(ExprsimError, match="mtcnn detector is closed"):
        det.detect(image)
    with pytest.raises(ExprsimError, match="min_confidence"):
        MTCNNDetector(min_confidence="high")
    with pytest.raises(ExprsimError, match="max_side"):
        MTCNNDetector(max_side="big")


# ------------------------------------------------------------------ 9: options at creation


@pytest.mark.parametrize(
    ("name", "kwargs", "option"),
    [
        ("mediapipe", {"threads": 0}, "threads"),  # was ValueError
        ("mediapipe", {"max_side": "big"}, "max_side"),  # was TypeError at the first detect
        ("mediapipe", {"max_side": 12.5}, "max_side"),
        ("mediapipe", {"tiles": "no"}, "tiles"),
        ("mediapipe", {"nms_iou": "0.3"}, "nms_iou"),
        ("mediapipe", {"nms_iou": float("nan")}, "nms_iou"),
        ("mediapipe", {"range": 1}, "range"),
        ("mediapipe", {"landmarks": None}, "landmarks"),
        ("mediapipe", {"engine": "onnx"}, "engine"),
        ("mediapipe", {"escalate_below": "0.3"}, "escalate_below"),
        ("mediapipe", {"tiles_below": 0.0}, "tiles_below"),
        ("mediapipe", {"on_landmark_failure": "skip"}, "on_landmark_failure"),
        ("mediapipe", {"inference_threads": "2"}, "inference_threads"),
        ("mediapipe-fast", {"threads": 0}, "threads"),
        ("mediapipe-mesh", {"max_side": "big"}, "max_side"),
        ("haar", {"min_size": "24"}, "min_size"),
        ("haar", {"min_neighbors": -1}, "min_neighbors"),
        ("haar", {"scale_factor": 1.0}, "scale_factor"),  # OpenCV's assertion at detect
        ("haar", {"landmarker": "none"}, "landmarker"),
        ("haar", {"max_side": "big"}, "max_side"),
        ("haar", {"cascade": 3}, "cascade"),
        ("dlib", {"upsample": -1}, "upsample"),
        ("dlib", {"threshold": "0"}, "threshold"),
        ("dlib", {"landmarker": "none"}, "landmarker"),
    ],
)
def test_a_wrong_option_fails_at_creation_naming_it(name, kwargs, option):
    if not available(name):
        pytest.skip(f"{name} is not installed here")
    with pytest.raises(ExprsimError) as exc:
        create_detector(name, **kwargs)
    text = one_line(exc)
    assert text.startswith(f"detector {name!r}: {option} must be"), text
    assert isinstance(exc.value, ValueError)  # as these options always raised


def test_good_options_still_pass(load_sample):
    det = create_detector(
        "mediapipe",
        landmarks="keypoints",
        max_side=np.int64(640),
        tiles=np.bool_(False),
        nms_iou=np.float32(0.3),
        escalate_below=None,
        tiles_below=0.5,
        inference_threads=2,
    )
    assert det.max_side == 640 and det.threads == 2 and det.tiles is False
    assert len(det.detect(load_sample("grace_hopper.jpg"))) == 1
    det.close()


def test_a_detector_name_that_is_not_a_string():
    with pytest.raises(ExprsimError) as exc:
        create_detector(["mediapipe"])  # type: ignore[arg-type]
    assert "a detector name is a string" in one_line(exc)


# ------------------------------------------------------------------ 9: align_face


@pytest.mark.parametrize(
    ("landmarks", "match"),
    [
        (np.zeros((3, 2)), r"got shape \(3, 2\)"),
        (np.full((5, 2), np.nan), "NaN or infinite"),
        (np.array([[1, 2]] * 4 + [[np.inf, 0]]), "NaN or infinite"),
        (np.ones((5, 2)), "degenerate"),
        ([[1, 2]] * 4 + [[None, "a"]], "array of numbers"),
        (None, "array of numbers"),
        ("abc", "array of numbers"),
    ],
)
def test_align_face_refuses_bad_landmarks_in_one_line(load_sample, landmarks, match):
    image = load_sample("grace_hopper.jpg")
    with pytest.raises(ExprsimError, match=match) as exc:
        exprsim.align_face(image, landmarks)
    one_line(exc)
    from exprsim.faces.align import LandmarkError

    assert isinstance(exc.value, LandmarkError) and isinstance(exc.value, ValueError)


def test_align_face_still_aligns(load_sample):
    lm = np.array([[221, 190], [305, 188], [268, 243], [230, 280], [303, 277]], float)
    assert align_face(load_sample("grace_hopper.jpg"), lm).shape == (112, 112, 3)
