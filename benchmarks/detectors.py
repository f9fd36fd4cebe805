"""Detector benchmark: miss rate on a labelled set of real faces, and speed on 640x480 images.

The labelled set (every image 640x480, built in memory from data available here):

* ``photos``: the two bundled portraits (astronaut, Grace Hopper), scaled to 480 px high and
  centred; one face each, located by the hand-checked landmarks in ``tests/faces``.
* ``video``: every ``--video-step``-th frame of ``../shared/data/sample_media/
  WolfgangLanger_Pexels.mp4`` (640x360, letterboxed to 640x480); one face per frame (the
  data README says so). Throughout the clip the face centre stays inside the frame region
  x 330-600, y 60-330 (checked on a montage of every 24th frame), which is the label.
* ``fer``: ``--fer-canvases`` canvases, each with 1-3 FER2013 PublicTest crops (FER+ rows
  with usable votes) upscaled to 64-200 px and pasted without overlap on a grey, faceless
  background (the wooden wall on the left of a video frame, stretched to 640x480); the
  pasted square is the label. FER2013 crops are tight (forehead and chin cut), so this
  subset is hard for detectors trained on whole faces.

A detection finds a labelled face when the centre of its box lies inside the label region
and its size ``sqrt(w * h)`` is within the label's size range (0.5-2.5 times the face size;
100-420 px for the video). Each label is matched at most once (best score first);
unmatched detections are counted as false positives. Time: median wall time of
``detector.detect(image)`` (detection plus the landmark stage) per image, after one warm-up
call, single process.

Usage (about 2 minutes on 2 CPU cores)::

    .venv/bin/python benchmarks/detectors.py [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SIZE = (640, 480)  # width, height
VIDEO = Path("../shared/data/sample_media/WolfgangLanger_Pexels.mp4")
#: Hand-checked landmarks (image-left eye, image-right eye, nose, mouth corners) of the
#: bundled portraits; same values as tests/faces/conftest.py.
PHOTO_LANDMARKS = {
    "astronaut_eileen_collins.jpg": [[203, 101], [247, 103], [223, 128], [201, 140], [247, 140]],
    "grace_hopper.jpg": [[221, 190], [305, 188], [268, 243], [230, 280], [303, 277]],
}
#: Face size as a multiple of the eye distance (the FER2013 template's crop side / eye distance).
FACE_PER_EYE_DISTANCE = 1 / 0.355


@dataclass
class Label:
    """Where a face is: its centre lies in ``rect`` and its size in ``[smin, smax]``."""

    rect: tuple[float, float, float, float]
    smin: float
    smax: float


@dataclass
class Item:
    subset: str
    image: np.ndarray
    labels: list[Label]


def letterbox(image: np.ndarray) -> tuple[np.ndarray, float, float, float]:
    """Scale to fit 640x480 and centre on black; returns (canvas, scale, dx, dy)."""
    import cv2

    w, h = SIZE
    s = min(w / image.shape[1], h / image.shape[0])
    nw, nh = round(image.shape[1] * s), round(image.shape[0] * s)
    resized = cv2.resize(
        image, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    )
    canvas = np.zeros((h, w, 3), np.uint8)
    dx, dy = (w - nw) // 2, (h - nh) // 2
    canvas[dy : dy + nh, dx : dx + nw] = resized
    return canvas, s, dx, dy


def photo_items() -> list[Item]:
    from exprsim.io import load_image
    from exprsim.samples import sample_path

    items = []
    for name, lm in PHOTO_LANDMARKS.items():
        canvas, s, dx, dy = letterbox(load_image(sample_path(name)))
        pts = np.asarray(lm, float) * s + [dx, dy]
        size = float(np.linalg.norm(pts[1] - pts[0])) * FACE_PER_EYE_DISTANCE
        cx, cy = pts.mean(axis=0)
        rect = (cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2)
        items.append(Item("photos", canvas, [Label(rect, 0.5 * size, 2.5 * size)]))
    return items


def video_frames(step: int) -> list[np.ndarray]:
    import av

    with av.open(str(VIDEO)) as container:
        return [
            f.to_ndarray(format="rgb24")
            for i, f in enumerate(container.decode(video=0))
            if i % step == 0
        ]


def video_items(frames: list[np.ndarray]) -> list[Item]:
    items = []
    for frame in frames:
        canvas, _s, dx, dy = letterbox(frame)  # 640x360 -> scale 1, dy 60
        rect = (330 + dx, 60 + dy, 600 + dx, 330 + dy)
        items.append(Item("video", canvas, [Label(rect, 100, 420)]))
    return items


def fer_items(n: int, frames: list[np.ndarray], seed: int) -> list[Item]:
    import cv2

    from exprsim.data.fer import load_ferplus

    split = load_ferplus("PublicTest")
    rng = np.random.default_rng(seed)
    w, h = SIZE
    items = []
    for _ in range(n):
        wall = frames[int(rng.integers(len(frames)))][:, :280]
        gray = cv2.cvtColor(
            cv2.resize(wall, SIZE, interpolation=cv2.INTER_CUBIC), cv2.COLOR_RGB2GRAY
        )
        canvas = gray.copy()
        placed: list[tuple[int, int, int]] = []
        for _k in range(int(rng.integers(1, 4))):
            for _try in range(50):
                side = int(rng.integers(64, 201))
                x, y = int(rng.integers(0, w - side)), int(rng.integers(0, h - side))
                if all(
                    x + side + 10 < px or px + ps + 10 < x or y + side + 10 < py or py + ps + 10 < y
                    for px, py, ps in placed
                ):
                    break
            else:
                continue
            face = split.images[int(rng.integers(len(split)))]
            canvas[y : y + side, x : x + side] = cv2.resize(
                face, (side, side), interpolation=cv2.INTER_CUBIC
            )
            placed.append((x, y, side))
        labels = [Label((x, y, x + s, y + s), 0.5 * s, 2.5 * s) for x, y, s in placed]
        items.append(
            Item("fer", np.ascontiguousarray(np.repeat(canvas[:, :, None], 3, axis=2)), labels)
        )
    return items


def match(boxes: np.ndarray, scores: np.ndarray, labels: list[Label]) -> tuple[int, int]:
    """(labels found, unmatched detections)."""
    free = list(range(len(labels)))
    found = 0
    for i in np.argsort(-scores):
        x1, y1, x2, y2 = boxes[i]
        cx, cy, size = (
            (x1 + x2) / 2,
            (y1 + y2) / 2,
            float(np.sqrt(max(x2 - x1, 0) * max(y2 - y1, 0))),
        )
        for j in free:
            lb = labels[j]
            if (
                lb.rect[0] <= cx <= lb.rect[2]
                and lb.rect[1] <= cy <= lb.rect[3]
                and lb.smin <= size <= lb.smax
            ):
                free.remove(j)
                found += 1
                break
    return found, len(boxes) - found


def run(name: str, kwargs: dict, items: list[Item]) -> dict:
    from exprsim.faces.detect import create_detector

    det = create_detector(name, **kwargs)
    det.detect(items[0].image)  # warm-up: graph building, model loading
    per_subset: dict[str, list[int]] = {}
    times, false_pos = [], 0
    for it in items:
        t0 = time.perf_counter()
        faces = det.detect(it.image)
        times.append((time.perf_counter() - t0) * 1000)
        boxes = np.array([f.box for f in faces]).reshape(-1, 4)
        found, fp = match(boxes, np.array([f.score for f in faces]), it.labels)
        false_pos += fp
        tot = per_subset.setdefault(it.subset, [0, 0])
        tot[0] += found
        tot[1] += len(it.labels)
    found = sum(v[0] for v in per_subset.values())
    present = sum(v[1] for v in per_subset.values())
    return {
        "detector": name
        + (" " + " ".join(f"{k}={v}" for k, v in kwargs.items()) if kwargs else ""),
        "found": found,
        "present": present,
        "miss_rate": 1 - found / present,
        "subsets": {k: {"found": v[0], "present": v[1]} for k, v in per_subset.items()},
        "false_positives": false_pos,
        "median_ms": statistics.median(times),
        "images": len(items),
    }


CONFIGS: list[tuple[str, dict]] = [
    ("mediapipe", {}),
    ("mediapipe", {"escalate_below": None}),  # every pass on every image: the old default
    ("mediapipe", {"escalate_below": 0.2}),
    ("mediapipe", {"escalate_below": 0.25}),
    ("mediapipe", {"escalate_below": 0.3}),
    ("mediapipe", {"tiles_below": 0.2}),
    ("mediapipe", {"tiles_below": 0.25}),
    ("mediapipe", {"tiles_below": 0.3}),
    ("mediapipe", {"tiles_below": 0.35}),
    ("mediapipe-mesh", {}),  # face-mesh landmarks: the default before 2026-11-30
    ("mediapipe", {"tiles": False}),
    ("mediapipe", {"range": "short", "tiles": False}),
    ("mediapipe", {"range": "full"}),
    ("mediapipe-fast", {}),
    ("haar", {}),
    ("dlib", {}),
    ("mtcnn", {}),
    # BlazeFace through MediaPipe's graph (mp.solutions), the engine before LiteRT
    ("mediapipe", {"engine": "graph"}),
    ("mediapipe-fast", {"engine": "graph"}),
    ("mediapipe", {"close_up_min_score": 0.0}),  # any face settles a close-up: before 12-02
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--video-step", type=int, default=4, help="use every N-th video frame")
    ap.add_argument(
        "--fer-canvases", type=int, default=100, help="canvases of pasted FER2013 crops"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write results here")
    ap.add_argument(
        "--only",
        action="append",
        metavar="N",
        type=int,
        choices=range(len(CONFIGS)),
        help=f"run only the N-th configuration of CONFIGS (0-{len(CONFIGS) - 1}; repeatable)",
    )
    args = ap.parse_args(argv)

    from exprsim.errors import BackendUnavailableError

    frames = video_frames(args.video_step)
    items = photo_items() + video_items(frames) + fer_items(args.fer_canvases, frames, args.seed)
    counts = {
        s: sum(len(i.labels) for i in items if i.subset == s) for s in ("photos", "video", "fer")
    }
    print(f"{len(items)} images 640x480, faces present: {counts}", file=sys.stderr)
    results = []
    chosen = [CONFIGS[i] for i in args.only] if args.only else CONFIGS
    for name, kwargs in chosen:
        try:
            res = run(name, kwargs, items)
        except BackendUnavailableError as exc:
            print(f"{name}: skipped ({exc})", file=sys.stderr)
            results.append({"detector": name, "unavailable": str(exc)})
            continue
        results.append(res)
        print(
            f"{res['detector']}: miss {100 * res['miss_rate']:.1f}%, {res['median_ms']:.0f} ms",
            file=sys.stderr,
        )

    print(
        "| detector | found / present | miss rate | photos | video | FER canvases | false pos. | median ms/image |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        if "unavailable" in r:
            print(f"| {r['detector']} | not installed | | | | | | |")
            continue
        sub = r["subsets"]
        cells = [f"{sub[s]['found']}/{sub[s]['present']}" for s in ("photos", "video", "fer")]
        print(
            f"| {r['detector']} | {r['found']}/{r['present']} | {100 * r['miss_rate']:.1f}% | "
            + " | ".join(cells)
            + f" | {r['false_positives']} | {r['median_ms']:.1f} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
