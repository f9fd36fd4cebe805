"""BlazeFace on LiteRT against MediaPipe's own graph, and its parts against hand cases."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from exprsim.faces.backends.blazeface import decode, ssd_anchors, weighted_nms

needs_lite = pytest.mark.skipif(
    importlib.util.find_spec("ai_edge_litert") is None
    or importlib.util.find_spec("mediapipe") is None,
    reason="LiteRT (ai-edge-litert) or mediapipe missing",
)

SAMPLES = [
    "grace_hopper.jpg",
    "astronaut_eileen_collins.jpg",
    "pexels_langer_frame000.jpg",
    "pexels_langer_frame144.jpg",
    "pexels_langer_frame288.jpg",
    "pexels_langer_frame432.jpg",
]


def _naive_anchors(size, strides, interpolated):
    """MediaPipe's SsdAnchorsCalculator loop (fixed anchor size), written out."""
    out = []
    layer = 0
    while layer < len(strides):
        n = 0
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            n += 2 if interpolated else 1
            last += 1
        cells = -(-size // strides[layer])
        for y in range(cells):
            for x in range(cells):
                for _ in range(n):
                    out.append(((x + 0.5) / cells, (y + 0.5) / cells))
        layer = last
    return np.array(out)


@pytest.mark.parametrize(
    ("size", "strides", "interp", "count"),
    [(128, (8, 16, 16, 16), True, 896), (192, (4,), False, 2304)],
)
def test_anchors_match_the_calculator_loop(size, strides, interp, count):
    got = ssd_anchors(size, strides, interp)
    assert got.shape == (count, 2)
    np.testing.assert_allclose(got, _naive_anchors(size, strides, interp), atol=1e-7)


def test_decode_by_hand():
    anchors = np.array([[0.25, 0.5], [0.75, 0.75]], np.float32)
    raw = np.zeros((2, 16), np.float32)
    raw[0, :4] = [12.8, -6.4, 32.0, 64.0]  # centre +0.1, -0.05; size 0.25 x 0.5 (of 128)
    raw[0, 4:6] = [6.4, 0.0]  # first keypoint 0.05 right of the anchor
    scores = np.array([2.0, -1.0])  # sigmoid 0.881, 0.269
    boxes, sc, kps = decode(raw, scores, anchors, 128, 0.5)
    assert boxes.shape == (1, 4) and kps.shape == (1, 6, 2)
    np.testing.assert_allclose(boxes[0], [0.35 - 0.125, 0.45 - 0.25, 0.35 + 0.125, 0.45 + 0.25])
    np.testing.assert_allclose(kps[0, 0], [0.30, 0.5])
    np.testing.assert_allclose(kps[0, 1:], np.tile([0.25, 0.5], (5, 1)))
    assert sc[0] == pytest.approx(1 / (1 + np.exp(-2.0)))


def test_weighted_nms_by_hand():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], float)
    scores = np.array([0.6, 0.9, 0.7])
    kps = np.zeros((3, 6, 2))
    kps[:, :, 0] = np.array([0.0, 10.0, 100.0])[:, None]
    b, s, k = weighted_nms(boxes, scores, kps)
    # the 0.9 box absorbs the 0.6 one (IoU 9/11): weights 0.9, 0.6
    np.testing.assert_allclose(b[0], [0.6, 0, 10.6, 10])
    np.testing.assert_allclose(k[0, :, 0], 6.0)
    np.testing.assert_allclose(s, [0.9, 0.7])
    np.testing.assert_allclose(b[1], [50, 50, 60, 60])
    empty = weighted_nms(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 6, 2)))
    assert [len(a) for a in empty] == [0, 0, 0]


def _mp_graph(selection: int, image: np.ndarray):
    """Boxes, scores and keypoints from ``mp.solutions.face_detection`` (the reference)."""
    import mediapipe as mp

    h, w = image.shape[:2]
    with mp.solutions.face_detection.FaceDetection(
        model_selection=selection, min_detection_confidence=0.5
    ) as fd:
        res = fd.process(np.ascontiguousarray(image))
    out = []
    for det in res.detections or []:
        bb = det.location_data.relative_bounding_box
        box = [bb.xmin * w, bb.ymin * h, (bb.xmin + bb.width) * w, (bb.ymin + bb.height) * h]
        kp = [(k.x * w - 0.5, k.y * h - 0.5) for k in det.location_data.relative_keypoints]
        out.append((np.array(box), float(det.score[0]), np.array(kp)))
    return sorted(out, key=lambda r: -r[1])


@needs_lite
@pytest.mark.parametrize("selection", [0, 1])
def test_same_faces_as_mediapipes_graph(load_sample, selection):
    from exprsim.faces.backends.blazeface import BlazeFaceLite

    lite = BlazeFaceLite(selection, min_score=0.5)
    images = [load_sample(n) for n in SAMPLES]
    images.append(images[0][:, 100:400])  # portrait: letterboxed the other way
    images.append(np.full((300, 400, 3), 128, np.uint8))  # no face
    found, errors = 0, []
    for img in images:
        ref = _mp_graph(selection, img)
        boxes, scores, kps = lite.detect(img)
        assert len(boxes) == len(ref)
        for b, s, k, (rb, rs, rk) in zip(boxes, scores, kps, ref, strict=True):
            side = rb[2] - rb[0]
            assert np.abs(b - rb).max() < max(2.0, 0.02 * side), (b, rb)
            assert np.abs(k - rk).max() < max(2.0, 0.02 * side)
            assert s == pytest.approx(rs, abs=0.02)
            errors.append(max(np.abs(b - rb).max(), np.abs(k - rk).max()))
            found += 1
    assert found >= 5  # the comparison saw faces
    for shape in [(0, 0, 3), (0, 10, 3), (1, 1, 3), (2, 900, 3)]:  # empty and sliver images
        boxes, scores, kps = lite.detect(np.zeros(shape, np.uint8))
        assert boxes.shape == (0, 4) and scores.shape == (0,) and kps.shape == (0, 6, 2)
    assert np.median(errors) < 0.1  # the same pre- and post-processing, not just close


def test_engine_is_checked():
    from exprsim.faces.backends.mediapipe import MediaPipeDetector

    with pytest.raises(ValueError, match="engine"):
        MediaPipeDetector(landmarks="keypoints", engine="onnx")
    from exprsim.faces.detect import create_detector

    det = create_detector("mediapipe-graph", landmarks="keypoints")
    assert det.engine == "graph" and det.name == "mediapipe-graph"


@needs_lite
def test_both_engines_give_the_default_detector_the_same_faces(load_sample):
    """Whole detector (escalation, tiles, merging, mesh landmarks) on either engine."""
    from exprsim.faces.backends.mediapipe import MediaPipeDetector

    lite = MediaPipeDetector()
    graph = MediaPipeDetector(engine="graph")
    assert lite.engine == "litert" and graph.engine == "graph"
    group = np.concatenate([load_sample(n) for n in SAMPLES[2:4]], axis=1)  # small faces: tiles
    for img in [load_sample(n) for n in SAMPLES] + [group]:
        a, b = lite.detect(img), graph.detect(img)
        assert len(a) == len(b) >= 1
        for fa, fb in zip(a, b, strict=True):
            tol = max(2.0, 0.02 * float(fb.box[2] - fb.box[0]))  # full range: within 2%
            np.testing.assert_allclose(fa.box, fb.box, atol=tol)
            np.testing.assert_allclose(fa.landmarks, fb.landmarks, atol=tol)
    lite.close()
    graph.close()
