"""``mediapipe`` backend (default): BlazeFace detection + face-mesh landmarks.

MediaPipe face detection has two models: short-range (``model_selection=0``, faces
within about 2 m, i.e. large in the frame) and full-range (``model_selection=1``, faces up
to about 5 m, small in the frame). ``range="auto"`` runs both and merges their boxes with
non-maximum suppression, so both close-ups and small faces are found. Both models miss
faces smaller than about a sixth of the image side (on the benchmark's 640x480 canvases,
almost every face under 105 px), so with ``tiles=True`` (default) a BlazeFace model also
runs on overlapping square tiles (side 2/3 of the shorter image side, stride half a tile:
6 tiles on a 640x480 image). From a shorter side of 600 px as detection sees it (HD frames,
phone photos) the tiles are at most ``max_tile`` (400 px: 24 tiles on a 12-MP photo) and
run the full-range model, which finds faces down to about 75 px in a 12-MP photo where the
short-range model on 320-px tiles stopped at about 150 px (``tile_model``;
docs/benchmarks.md); smaller images keep the short-range model. Tile detections scoring below
``tile_min_confidence`` (0.65) or touching an inner tile edge (cut faces) are discarded,
and all boxes are merged by non-maximum suppression. (The 0.65: on the benchmark set and
the bundled photos, the few false positives from tiles scored 0.53-0.61, while 90% of true
tile detections scored above 0.69.) On the benchmark's pasted FER2013 faces, tiles raised
recall from 53% to 84%, at about 2.5x the time per image (see docs/benchmarks.md).

The passes escalate (``escalate_below``, default 0.35): the short-range model runs first on
the whole image, and when it finds at least one face and every face it finds spans at least
that fraction of the *longer* image side, the image is taken to be a close-up and nothing
else runs (one pass instead of eight: the usual portrait, selfie or video frame). Otherwise
(no face, or a smaller one, or one scoring under ``close_up_min_score``, 0.65) the
full-range model and the tiles run as above and everything is merged. (The score gate: on a
12-MP canvas a smooth background blob was taken for a 530-px face at 0.51, and that
"close-up" hid a real 90-px face; every frame of the bundled video and every bundled photo
scores 0.84 or more in the short-range pass.) The longer side, because the model sees the
image letterboxed to 128 px along it: the faces it can miss are small relative to that
side. The price: a close-up with a
small face beside it (a face under about a sixth of the longer side) loses the small face;
``escalate_below=None`` always runs every pass. The threshold was chosen on the detector
benchmark's miss rate and the test suite's group photo (docs/benchmarks.md). Once escalated,
``tiles_below`` (default ``None``: off) can spare the tiles when the whole-image passes found
only faces at least that fraction of the longer side; it halves an escalated image's time
but loses small faces beside large ones (measured in docs/benchmarks.md), so it is opt-in.

The BlazeFace passes run, by default (``engine="auto"`` with LiteRT installed, as it is with
exprsim's dependencies), on the LiteRT interpreter with MediaPipe's own model files and its
graph's pre- and post-processing re-implemented
(:class:`exprsim.faces.backends.blazeface.BlazeFaceLite`): the same detections as
``mp.solutions.face_detection`` (tested), about 0.7 ms less per pass (the networks
themselves, 4.3 ms short range and 11 ms full range per pass on one core here, are most of
the time); ``engine="graph"`` runs MediaPipe's graph instead.

BlazeFace gives 6 keypoints (both eyes, nose tip, mouth centre, both ear tragions) but no
mouth corners, so the 5 alignment points come from one of MediaPipe's face landmark models
run on a full-resolution region around each box. By default (``landmarks="auto"``) that is
the plain 468-point landmark model run directly with LiteRT on the region MediaPipe derives
from the detection, eyes levelled (:class:`exprsim.faces.landmarks.LiteMeshLandmarker`,
``"mesh-lite"``: one inference, about 5 ms per face here); ``landmarks="mesh"`` (the
``mediapipe-mesh`` preset) runs the face-mesh graph instead
(:class:`exprsim.faces.landmarks.MeshLandmarker`: a second face detector inside the crop,
then the 478-point attention mesh, about 15 ms per face). The face mesh is the more
accurate of the two on the hand-checked photos (1.7 px mean error against mesh-lite's
2.4 px), but through the whole pipeline the two give the same embedding quality: on the
1,408 FER+ validation faces pasted into canvases, vote-triplet accuracy, kNN11 and the
network's own emotion accuracy agree within the noise, upright and rolled by up to 25
degrees (``benchmarks/landmark_quality.py``, docs/benchmarks.md). Features that need the
mesh itself (landmark VAE codes, the video mesh export) run the face-mesh graph on their
own. If the landmark model finds no face in the region, the face is kept with approximate
landmarks: eyes and nose tip from BlazeFace, mouth corners at the mouth centre plus/minus
0.415 times the eye-to-eye vector (the mouth is about 0.83 eye distances wide in
insightface's 5-point template). These approximate points are rough (``landmarks=
"keypoints"`` uses them for every face): on the bundled photos BlazeFace's nose keypoint
sits 0.1-0.25 eye distances above the mesh's nose tip, and the mouth corners are up to
19 px off on a smiling face.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from exprsim.faces.detect import (
    DEFAULT_MAX_SIDE,
    MAX_INFERENCE_THREADS,
    NESTED,
    BaseDetector,
    Candidate,
    DetectorOptionError,
    box_inside,
    cut_by_region,
    modules_probe,
    nms,
    option_bool,
    option_choice,
    option_int,
    option_max_side,
    option_number,
    register_detector,
)

_RANGES = {"short": (0,), "full": (1,), "auto": (0, 1)}
#: Smallest face, as a fraction of the longer image side, that lets the short-range pass
#: alone settle an image (chosen on the detector benchmark; see the module docstring).
DEFAULT_ESCALATE_BELOW = 0.35
#: Lowest short-range score of a face that may settle an image as a close-up (see the
#: module docstring).
DEFAULT_CLOSE_UP_MIN_SCORE = 0.65
#: Smallest face, as a fraction of the longer side, found by the whole-image passes that
#: spares an escalated image the tiles (``None``: the tiles always run once escalated).
DEFAULT_TILES_BELOW: float | None = None
#: Largest tile side, in the pixels detection runs on (``max_side``), for images whose
#: shorter side there is :data:`MAX_TILE_FROM` or more (smaller ones keep tiles of 2/3 of
#: it, as benchmarked). A 12-MP photo (1280x960 for detection) gets 24 tiles of 400 px
#: instead of 6 of 640; with the full-range model on them (``tile_model="auto"``), faces
#: of 90 px and more in it are found (docs/benchmarks.md, "Small faces in phone photos").
DEFAULT_MAX_TILE: int | None = 400
#: Shorter side (in detection pixels) from which tiles are at most ``max_tile`` and, with
#: ``tile_model="auto"``, run the full-range model.
MAX_TILE_FROM = 600
#: Which BlazeFace model runs on the tiles (``"auto"``: full range from
#: :data:`MAX_TILE_FROM`, short range below).
TILE_MODELS = ("auto", "short", "full")
_PROBE = modules_probe("mediapipe", install="pip install mediapipe==0.10.21")
#: Half the mouth width as a fraction of the eye-to-eye vector (approximation only).
MOUTH_HALF_WIDTH = 0.415


def _all_at_least(cands: list[Candidate], fraction: float | None, image: np.ndarray) -> bool:
    """At least one candidate, and every one at least ``fraction`` of the longer side
    (``None``: never)."""
    if fraction is None or not cands:
        return False
    side = fraction * max(image.shape[:2])
    return all(min(c.box[2] - c.box[0], c.box[3] - c.box[1]) >= side for c in cands)


def _drop_weak_enclosing(cands: list[Candidate], weak: float) -> list[Candidate]:
    """``cands`` (best score first) without the boxes scoring under ``weak`` that hold a
    better-scored box (more than :data:`~exprsim.faces.detect.NESTED` of it inside them).

    :func:`~exprsim.faces.detect.nms` keeps a bigger box around a smaller, better-scored
    one (a small face held in front of a bigger one). But the whole-image full-range pass
    boxes a face of 25-30 px loosely, about twice its size at 0.57-0.63, around the tile
    detection of the same face at 0.84-0.94 (IoU 0.2-0.3): two faces out of one. A real
    bigger face scores higher than that (every bundled photo and video frame: 0.84 or
    more), so only weak enclosing boxes go.
    """
    if len(cands) < 2:
        return cands
    boxes = np.stack([c.box for c in cands])
    held = box_inside(boxes, boxes)  # [i, j]: share of box j inside box i
    return [c for i, c in enumerate(cands) if c.score >= weak or not (held[i, :i] > NESTED).any()]


def keypoints_to_five(kp: np.ndarray) -> np.ndarray:
    """Approximate 5 landmarks from BlazeFace's 6 keypoints ``(6, 2)`` (see module doc)."""
    kp = np.asarray(kp, dtype=np.float64)
    eye_l, eye_r, nose, mouth = kp[0], kp[1], kp[2], kp[3]
    half = MOUTH_HALF_WIDTH * (eye_r - eye_l)
    return np.stack([eye_l, eye_r, nose, mouth - half, mouth + half]).astype(np.float32)


def _checked_options(**opts: Any) -> dict[str, Any]:
    """:class:`MediaPipeDetector`'s options, each checked (type and range) before anything
    is built: a wrong one raises :class:`DetectorOptionError` naming it, at creation rather
    than at the first :meth:`~MediaPipeDetector.detect`."""
    name = "mediapipe"
    out = dict(opts)
    out["range"] = option_choice(name, "range", opts["range"], tuple(_RANGES))
    out["tile_model"] = option_choice(name, "tile_model", opts["tile_model"], TILE_MODELS)
    out["landmarks"] = option_choice(
        name, "landmarks", opts["landmarks"], ("auto", "mesh-lite", "mesh", "keypoints")
    )
    out["engine"] = option_choice(name, "engine", opts["engine"], ("auto", "litert", "graph"))
    out["on_landmark_failure"] = option_choice(
        name, "on_landmark_failure", opts["on_landmark_failure"], ("approximate", "drop")
    )
    out["threads"] = option_int(name, "threads", opts["threads"], 1, MAX_INFERENCE_THREADS)
    out["max_side"] = option_max_side(name, opts["max_side"])
    out["tiles"] = option_bool(name, "tiles", opts["tiles"])
    if opts["max_tile"] is not None:
        out["max_tile"] = option_int(name, "max_tile", opts["max_tile"], 64)
    for key in ("tile_min_confidence", "min_confidence", "nms_iou", "close_up_min_score"):
        out[key] = option_number(name, key, opts[key], 0.0, 1.0)
    for key in ("escalate_below", "tiles_below"):
        if opts[key] is not None:
            out[key] = option_number(name, key, opts[key], 0.0, 1.0, low_open=True)
    return out


@register_detector(
    "mediapipe",
    "MediaPipe BlazeFace (short range; full range + tiles for small faces), LiteRT "
    "face-landmark model (default)",
    probe=_PROBE,
    threads=True,
)
class MediaPipeDetector(BaseDetector):
    """MediaPipe face detection.

    Args:
        range: ``"short"``, ``"full"`` or ``"auto"`` (both, merged).
        tiles: also run a BlazeFace model on overlapping tiles (see module docstring; only
            with ``range`` ``"short"`` or ``"auto"`` and images at least 240 px).
        tile_min_confidence: minimum score of a detection found in a tile.
        max_tile: largest tile side in detection pixels, for images whose shorter side
            there is :data:`MAX_TILE_FROM` or more (:data:`DEFAULT_MAX_TILE`; at least 64;
            ``None``: tiles of 2/3 of the shorter side, however large).
        tile_model: the model run on the tiles: ``"auto"`` (full range on images whose
            shorter side is :data:`MAX_TILE_FROM` or more, short range on smaller ones),
            ``"short"`` or ``"full"``.
        min_confidence: minimum BlazeFace score (the full-range model keeps its graph's
            own floor, 0.6, on either engine).
        landmarks: ``"auto"`` (default: ``"mesh-lite"`` when LiteRT is installed, as it
            is with exprsim's dependencies, else ``"mesh"``), ``"mesh-lite"`` (the
            468-point landmark model alone, LiteRT), ``"mesh"`` (the face-mesh graph, 478
            points; the most accurate points, about 10 ms more per face) or
            ``"keypoints"`` (BlazeFace keypoints with approximate mouth corners; fastest,
            least accurate).
        max_side: longest side used for detection.
        nms_iou: IoU above which boxes of the two models are merged.
        on_landmark_failure: ``"approximate"`` or ``"drop"`` (see module docstring).
        escalate_below: with ``range="auto"``, the full-range model and the tiles run only
            when the short-range pass finds no face or a face smaller than this fraction of
            the longer image side (see module docstring); ``None``: always.
        close_up_min_score: lowest short-range score of a face that lets the image be
            taken for a close-up (:data:`DEFAULT_CLOSE_UP_MIN_SCORE`; 0: any face).
        tiles_below: once escalated, the tiles run only when the whole-image passes found
            no face or a face smaller than this fraction of the longer side (``None``:
            always).
        engine: how the BlazeFace models run: ``"litert"`` (the same model files with the
            LiteRT interpreter and MediaPipe's pre- and post-processing in NumPy,
            :class:`exprsim.faces.backends.blazeface.BlazeFaceLite`; several times faster
            per pass), ``"graph"`` (``mp.solutions.face_detection``) or ``"auto"``
            (``"litert"`` when LiteRT is installed, else ``"graph"``).
        threads: LiteRT threads per inference (BlazeFace on LiteRT and mesh-lite; the
            MediaPipe graphs choose their own). 1 suits a detector in one of several
            front-end threads; a detector running alone is faster with every core
            (:func:`exprsim.faces.litert.inference_threads`, what the shared detectors of
            :func:`exprsim.faces.pipeline.resolve_detector` get).
    """

    name = "mediapipe"

    def __init__(
        self,
        range: str = "auto",
        tiles: bool = True,
        tile_min_confidence: float = 0.65,
        min_confidence: float = 0.5,
        landmarks: str = "auto",
        max_side: int | None = DEFAULT_MAX_SIDE,
        nms_iou: float = 0.3,
        on_landmark_failure: str = "approximate",
        escalate_below: float | None = DEFAULT_ESCALATE_BELOW,
        tiles_below: float | None = DEFAULT_TILES_BELOW,
        engine: str = "auto",
        threads: int = 1,
        max_tile: int | None = DEFAULT_MAX_TILE,
        tile_model: str = "auto",
        close_up_min_score: float = DEFAULT_CLOSE_UP_MIN_SCORE,
    ) -> None:
        opts = _checked_options(
            max_tile=max_tile,
            tile_model=tile_model,
            close_up_min_score=close_up_min_score,
            range=range,
            tiles=tiles,
            tile_min_confidence=tile_min_confidence,
            min_confidence=min_confidence,
            landmarks=landmarks,
            max_side=max_side,
            nms_iou=nms_iou,
            on_landmark_failure=on_landmark_failure,
            escalate_below=escalate_below,
            tiles_below=tiles_below,
            engine=engine,
            threads=threads,
        )
        self.threads = threads = opts["threads"]
        landmarks = opts["landmarks"]
        landmarker = None
        if landmarks != "keypoints":
            from exprsim.faces.landmarks import create_landmarker, lite_mesh_probe

            if landmarks == "auto":
                landmarks = "mesh-lite" if lite_mesh_probe() is None else "mesh"
            extra = {"threads": threads} if landmarks == "mesh-lite" else {}
            landmarker = create_landmarker(landmarks, **extra)
        self.landmarks_kind = landmarks
        super().__init__(opts["max_side"], landmarker, opts["on_landmark_failure"])
        self.range = opts["range"]
        self.tiles = opts["tiles"]
        self.tile_min_confidence = opts["tile_min_confidence"]
        self.max_tile = opts["max_tile"]
        self.tile_model = opts["tile_model"]
        self.min_confidence = opts["min_confidence"]
        self.nms_iou = opts["nms_iou"]
        self.escalate_below = opts["escalate_below"]
        self.close_up_min_score = opts["close_up_min_score"]
        self.tiles_below = opts["tiles_below"]
        engine = opts["engine"]
        if engine == "auto":
            from exprsim.faces.backends.blazeface import blazeface_probe

            engine = "litert" if blazeface_probe() is None else "graph"
        self.engine = engine
        self._models: dict[int, Any] = {}

    def _model(self, selection: int) -> Any:
        self.check_open()  # a closed detector builds no new model
        if selection not in self._models and self.engine == "litert":
            from exprsim.faces.backends.blazeface import SPECS, BlazeFaceLite

            # the graph's own floor too (0.6 full range): weaker anchors, averaged into a
            # detection by the weighted NMS, moved its box off the graph's by up to 6 px
            floor = max(self.min_confidence, SPECS[selection].min_score)
            self._models[selection] = BlazeFaceLite(
                selection, min_score=floor, threads=self.threads
            )
        if selection not in self._models:
            from exprsim.faces.backends.native_log import quiet_native_stderr, warmup_face

            with quiet_native_stderr():  # graph start-up logs (absl, TFLite) stay off the terminal
                import mediapipe as mp

                model = mp.solutions.face_detection.FaceDetection(
                    model_selection=selection, min_detection_confidence=self.min_confidence
                )
                model.process(warmup_face())  # the first run logs too
            self._models[selection] = model
        return self._models[selection]

    def _run(self, selection: int, image: np.ndarray, x0: int = 0, y0: int = 0) -> list[Candidate]:
        off = np.array([x0, y0], dtype=np.float64)
        if self.engine == "litert":
            boxes, scores, kps = self._model(selection).detect(image)
            return [
                Candidate(b + np.tile(off, 2), float(s), None, keypoints_to_five(k + off))
                for b, s, k in zip(boxes, scores, kps, strict=True)
            ]
        h, w = image.shape[:2]
        result = self._model(selection).process(np.ascontiguousarray(image))
        cands = []
        for det in result.detections or []:
            loc = det.location_data
            bb = loc.relative_bounding_box
            box = np.array(
                [bb.xmin * w, bb.ymin * h, (bb.xmin + bb.width) * w, (bb.ymin + bb.height) * h]
            )
            kp = np.array([(k.x * w - 0.5, k.y * h - 0.5) for k in loc.relative_keypoints])
            box = box + np.tile(off, 2)
            cands.append(Candidate(box, float(det.score[0]), None, keypoints_to_five(kp + off)))
        return cands

    def tile_plan(self, image: np.ndarray) -> tuple[int, int]:
        """The BlazeFace model (``model_selection``) and tile side the tiles of ``image``
        get (see ``max_tile`` and ``tile_model``)."""
        h, w = image.shape[:2]
        side = (2 * min(h, w)) // 3
        large = min(h, w) >= MAX_TILE_FROM
        if self.max_tile is not None and large:
            side = min(side, self.max_tile)
        full = self.tile_model == "full" or (self.tile_model == "auto" and large)
        return int(full), side

    def _tiled(self, image: np.ndarray) -> list[Candidate]:
        h, w = image.shape[:2]
        selection, side = self.tile_plan(image)
        stride = side // 2
        xs = sorted({*range(0, w - side, stride), w - side})
        ys = sorted({*range(0, h - side, stride), h - side})
        cands = []
        for y0 in ys:
            for x0 in xs:
                region = (x0, y0, x0 + side, y0 + side)
                for c in self._run(selection, image[y0 : y0 + side, x0 : x0 + side], x0, y0):
                    cut = cut_by_region(c.box, region, (w, h))
                    if not cut and c.score >= self.tile_min_confidence:
                        cands.append(c)
        return cands

    def close_up(self, cands: list[Candidate], image: np.ndarray) -> bool:
        """Whether short-range candidates settle the image (see ``escalate_below`` and
        ``close_up_min_score``)."""
        confident = all(c.score >= self.close_up_min_score for c in cands)
        return confident and _all_at_least(cands, self.escalate_below, image)

    def needs_tiles(self, cands: list[Candidate], image: np.ndarray) -> bool:
        """Whether the tiles run after the whole-image passes (see ``tiles_below``)."""
        return not _all_at_least(cands, self.tiles_below, image)

    def propose(self, image: np.ndarray) -> list[Candidate]:
        selections = _RANGES[self.range]
        cands = self._run(selections[0], image)
        if not (selections == (0, 1) and self.close_up(cands, image)):
            for sel in selections[1:]:
                cands += self._run(sel, image)
            tiles = self.tiles and 0 in selections and min(image.shape[:2]) >= 240
            if tiles and self.needs_tiles(cands, image):
                cands += self._tiled(image)
        if len(cands) > 1:
            keep = nms(np.stack([c.box for c in cands]), [c.score for c in cands], self.nms_iou)
            cands = _drop_weak_enclosing([cands[i] for i in keep], self.tile_min_confidence)
        if self.landmarker is None:
            cands = [Candidate(c.box, c.score, c.fallback, c.fallback) for c in cands]
        return cands

    def close(self) -> None:
        for m in self._models.values():
            m.close()
        self._models.clear()
        super().close()


def _preset(name: str, defaults: dict[str, Any], kwargs: dict[str, Any]) -> MediaPipeDetector:
    """A :class:`MediaPipeDetector` with other defaults, registered under ``name``."""
    try:
        det = MediaPipeDetector(**{**defaults, **kwargs})
    except DetectorOptionError as exc:  # named as the user named it
        raise DetectorOptionError(str(exc).replace("'mediapipe'", repr(name), 1)) from None
    det.name = name
    return det


@register_detector(
    "mediapipe-fast",
    "MediaPipe BlazeFace short range only (no full range, no tiles, even for small "
    "faces): for photos with large faces",
    probe=_PROBE,
    threads=True,
)
def mediapipe_fast(**kwargs: Any) -> MediaPipeDetector:
    """The ``mediapipe`` detector with ``range="short"`` and ``tiles=False``.

    One BlazeFace pass per image whatever the faces found: faster than the default on
    photos and video frames where faces span more than about a sixth of the image side, but
    it misses smaller faces (docs/benchmarks.md). Other options as
    :class:`MediaPipeDetector`.
    """
    return _preset("mediapipe-fast", {"range": "short", "tiles": False}, kwargs)


@register_detector(
    "mediapipe-graph",
    "The default mediapipe detector with its BlazeFace passes run by MediaPipe's own graph "
    "(mp.solutions) instead of LiteRT: the same faces, a little slower",
    probe=_PROBE,
    threads=True,
)
def mediapipe_graph(**kwargs: Any) -> MediaPipeDetector:
    """The ``mediapipe`` detector with ``engine="graph"`` (other options as
    :class:`MediaPipeDetector`)."""
    return _preset("mediapipe-graph", {"engine": "graph"}, kwargs)


@register_detector(
    "mediapipe-mesh",
    "The default mediapipe detector with face-mesh landmarks (MediaPipe's graph: a second "
    "face detector, then the 478-point attention mesh): the most accurate points, slower",
    probe=_PROBE,
    threads=True,
)
def mediapipe_mesh(**kwargs: Any) -> MediaPipeDetector:
    """The ``mediapipe`` detector with ``landmarks="mesh"`` (other options as
    :class:`MediaPipeDetector`): about 10 ms more per face on these cores, 0.7 px closer
    to hand-checked points on the bundled photos (docs/benchmarks.md)."""
    return _preset("mediapipe-mesh", {"landmarks": "mesh"}, kwargs)
