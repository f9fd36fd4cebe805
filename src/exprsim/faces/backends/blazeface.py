"""BlazeFace, run directly with LiteRT: MediaPipe's face detection without its graph.

The ``mediapipe`` detector's passes are MediaPipe's two BlazeFace models. Through
``mp.solutions.face_detection`` each pass costs about 6 ms on a 640x480 image here, of
which the network itself (128x128 input) is a fraction; the rest is the graph around it.
:class:`BlazeFaceLite` runs the same ``.tflite`` files from the mediapipe package with the
LiteRT interpreter and re-implements, in NumPy, what MediaPipe's face detection graphs
(``face_detection_short_range.pbtxt`` / ``face_detection_full_range.pbtxt``) do around it:

* **input**: the image letterboxed into the model's square input (aspect kept, zero
  border, centred), bilinear, scaled to ``[-1, 1]``;
* **anchors** (``SsdAnchorsCalculator`` with ``fixed_anchor_size``: every anchor is 1 x 1,
  centred on its cell): short range 128 px, strides 8, 16, 16, 16 with an interpolated
  anchor per location (2 anchors per 8-px cell + 6 per 16-px cell = 896); full range
  192 px, stride 4, one anchor per cell (2304);
* **decoding** (``TensorsToDetectionsCalculator``): box centre = raw / input size +
  anchor centre, box size = raw / input size; 6 keypoints likewise; score = sigmoid of the
  raw score clipped to +-100; kept at or above ``min_score`` (0.5 short, 0.6 full range
  in MediaPipe's graphs);
* **weighted non-maximum suppression** (``NonMaxSuppressionCalculator``, ``WEIGHTED``, IoU
  0.3): the best remaining detection absorbs every other one overlapping it by more than
  0.3, and its box and keypoints become their score-weighted mean;
* **letterbox removal**, back to image pixels.

Tested against ``mp.solutions.face_detection`` on the bundled photos: the same faces,
boxes, keypoints and scores (equal to 0.1 px on all but one of twelve, within 2 px there).
Not thread-safe (one interpreter per instance).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from exprsim.errors import BackendUnavailableError
from exprsim.faces.detect import box_iou
from exprsim.faces.litert import litert_probe, mediapipe_model_file, open_interpreter


@dataclass(frozen=True)
class BlazeFaceSpec:
    """One BlazeFace model as MediaPipe's graph runs it."""

    model: str  # path inside the mediapipe package
    size: int  # square input side
    strides: tuple[int, ...]
    interpolated: bool  # an extra anchor per layer (interpolated_scale_aspect_ratio > 0)
    min_score: float


#: ``model_selection`` 0 (short range) and 1 (full range), as in MediaPipe.
SPECS: dict[int, BlazeFaceSpec] = {
    0: BlazeFaceSpec(
        "modules/face_detection/face_detection_short_range.tflite", 128, (8, 16, 16, 16), True, 0.5
    ),
    1: BlazeFaceSpec(
        "modules/face_detection/face_detection_full_range_sparse.tflite", 192, (4,), False, 0.6
    ),
}
NMS_IOU = 0.3


def ssd_anchors(size: int, strides: tuple[int, ...], interpolated: bool) -> np.ndarray:
    """Anchor centres ``(N, 2)`` (x, y in [0, 1]) in the model's output order: for each run
    of equal strides, every cell row-major, then that cell's anchors (2 per layer with
    ``interpolated``, else 1)."""
    out = []
    layer = 0
    while layer < len(strides):
        per_cell = 0
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            per_cell += 2 if interpolated else 1
            last += 1
        cells = math.ceil(size / strides[layer])
        ys, xs = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
        centres = np.stack([(xs.ravel() + 0.5) / cells, (ys.ravel() + 0.5) / cells], axis=1)
        out.append(np.repeat(centres, per_cell, axis=0))
        layer = last
    return np.concatenate(out).astype(np.float32)


def decode(
    raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, size: int, min_score: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw outputs ``(N, 16)``, ``(N,)`` -> boxes ``(M, 4)`` (x1, y1, x2, y2), scores ``(M,)``
    and keypoints ``(M, 6, 2)``, in the model's unit input square, score >= ``min_score``."""
    scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores.astype(np.float64), -100.0, 100.0)))
    keep = scores >= min_score
    raw = raw_boxes[keep].astype(np.float64) / size
    anc = anchors[keep].astype(np.float64)
    centre = raw[:, :2] + anc
    half = raw[:, 2:4] / 2.0
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    kps = raw[:, 4:16].reshape(-1, 6, 2) + anc[:, None, :]
    return boxes, scores[keep], kps


def weighted_nms(
    boxes: np.ndarray, scores: np.ndarray, kps: np.ndarray, iou: float = NMS_IOU
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's weighted NMS: each kept detection is the score-weighted mean (box and
    keypoints) of the remaining detections overlapping the best one by more than ``iou``;
    it keeps the best one's score. Best first."""
    order = np.argsort(-scores, kind="stable")
    boxes, scores, kps = boxes[order], scores[order], kps[order]
    alive = np.ones(len(scores), dtype=bool)
    out_b, out_s, out_k = [], [], []
    for i in range(len(scores)):
        if not alive[i]:
            continue
        idx = np.flatnonzero(alive)
        group = idx[box_iou(boxes[i], boxes[idx])[0] > iou]
        group = np.union1d(group, [i])
        w = scores[group][:, None]
        out_b.append((boxes[group] * w).sum(0) / w.sum())
        out_k.append((kps[group] * w[:, :, None]).sum(0) / w.sum())
        out_s.append(scores[i])
        alive[group] = False
    if not out_s:
        return np.zeros((0, 4)), np.zeros(0), np.zeros((0, 6, 2))
    return np.stack(out_b), np.asarray(out_s), np.stack(out_k)


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(H, W, 3)`` uint8 -> the model input ``(1, size, size, 3)`` float32 in [-1, 1] and
    the ``(2, 3)`` affine from that input's unit square back to image pixels."""
    import cv2

    h, w = image.shape[:2]
    s = size / max(h, w)  # image pixels -> input pixels
    tx, ty = (size - w * s) / 2.0, (size - h * s) / 2.0
    # as MediaPipe's ImageToTensorCalculator: the image rectangle [0, W] x [0, H] maps onto
    # the letterboxed input by a plain scale and shift handed to OpenCV, which reads it on
    # pixel centres (no half-pixel correction); with it, outputs match the graph's exactly
    m = np.array([[s, 0.0, tx], [0.0, s, ty]])
    x = cv2.warpAffine(
        image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )
    x = x.astype(np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0)
    # unit input square -> image pixels (pixel corners: u * size input px, then undo m)
    back = np.array([[size / s, 0.0, -tx / s], [0.0, size / s, -ty / s]])
    return x[None], back


def blazeface_probe() -> str | None:
    """``None`` when :class:`BlazeFaceLite` can run here, else what is missing."""
    return litert_probe(SPECS[0].model, "BlazeFace on LiteRT")


class BlazeFaceLite:
    """One BlazeFace model (``selection`` 0 short range, 1 full range) on LiteRT.

    Args:
        selection: as MediaPipe's ``model_selection``.
        min_score: minimum score (MediaPipe's graph default for the model when ``None``).
        threads: LiteRT threads per inference.
    """

    def __init__(self, selection: int, min_score: float | None = None, threads: int = 1) -> None:
        if selection not in SPECS:
            raise ValueError(f"selection must be one of {sorted(SPECS)}, got {selection!r}")
        why = blazeface_probe()
        if why is not None:
            raise BackendUnavailableError(f"BlazeFace on LiteRT is unavailable: {why}")
        self.spec = SPECS[selection]
        self.min_score = self.spec.min_score if min_score is None else float(min_score)
        self.anchors = ssd_anchors(self.spec.size, self.spec.strides, self.spec.interpolated)
        self._interp: Any = open_interpreter(
            mediapipe_model_file(self.spec.model, "BlazeFace on LiteRT"), threads
        )
        self._in = self._interp.get_input_details()[0]["index"]
        outs = {int(o["shape"][-1]): o["index"] for o in self._interp.get_output_details()}
        self._boxes, self._scores = outs[16], outs[1]

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(H, W, 3)`` uint8 RGB -> boxes ``(M, 4)`` x1, y1, x2, y2 and keypoints
        ``(M, 6, 2)`` in image pixels (pixel centres at integers, as the rest of exprsim),
        scores ``(M,)``; best first. Keypoints: subject's right eye (image left), left
        eye, nose tip, mouth centre, right ear tragion, left ear tragion."""
        size = self.spec.size
        if image.shape[0] == 0 or image.shape[1] == 0:  # an empty region: nothing to find
            return np.zeros((0, 4)), np.zeros(0), np.zeros((0, 6, 2))
        x, back = letterbox(np.ascontiguousarray(image), size)
        self._interp.set_tensor(self._in, x)
        self._interp.invoke()
        raw_boxes = self._interp.get_tensor(self._boxes).reshape(-1, 16)
        raw_scores = self._interp.get_tensor(self._scores).reshape(-1)
        boxes, scores, kps = decode(raw_boxes, raw_scores, self.anchors, size, self.min_score)
        boxes, scores, kps = weighted_nms(boxes, scores, kps)
        lin, off = back[:, :2], back[:, 2]
        boxes = (boxes.reshape(-1, 2, 2) @ lin.T + off).reshape(-1, 4)
        kps = kps @ lin.T + off - 0.5  # pixel corners -> centres, as the graph path does
        return boxes, scores, kps

    def close(self) -> None:
        self._interp = None
