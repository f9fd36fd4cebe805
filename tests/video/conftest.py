"""Synthetic clips for the video tests: bundled face photos pasted into frames, written
with PyAV into ``tmp_path`` (never into ../shared)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

#: Frame size of the synthetic clips (even, small: fast to encode and detect).
W, H = 480, 256
#: Side of a pasted face patch and the two places where faces go.
FACE = 180
LEFT, RIGHT = (30, 40), (270, 40)


def write_clip(
    path: Path,
    frames: Sequence[np.ndarray],
    fps: int = 10,
    codec: str = "libx264",
    faststart: bool = True,
    fmt: str | None = None,
    sar: Any = None,
) -> Path:
    """Encode ``(H, W, 3)`` uint8 RGB frames; ``faststart`` puts the mp4 index first;
    ``fmt`` names the muxer (``"h264"``: a raw elementary stream) instead of the suffix;
    ``sar``: the pixels' aspect ratio (a ``Fraction``; ``None``: square)."""
    import av

    options = {"movflags": "+faststart"} if faststart and path.suffix in (".mp4", ".mov") else {}
    with av.open(str(path), "w", format=fmt, options=options) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        if sar is not None:
            stream.codec_context.sample_aspect_ratio = sar
        if codec == "libx264":
            stream.options = {"crf": "12", "preset": "ultrafast"}
        elif codec == "libx265":
            stream.options = {"preset": "ultrafast"}
        elif codec.startswith("libvpx"):
            stream.options = {"deadline": "realtime", "cpu-used": "8"}
        for im in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(im, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


class InterruptingDetector:
    """A detector that finds nothing and raises ``KeyboardInterrupt`` (Ctrl-C) at its
    ``at``-th call."""

    name = "fake"

    def __init__(self, at: int) -> None:
        self.at, self.calls = at, 0

    def detect(self, image: np.ndarray) -> list:
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return []


def numbered_frames(n: int, w: int = 64, h: int = 48) -> list[np.ndarray]:
    """Tiny frames whose mean brightness encodes their number (no faces)."""
    return [np.full((h, w, 3), (i * 7) % 200 + 20, dtype=np.uint8) for i in range(n)]


@pytest.fixture(scope="session")
def face_patches() -> dict[str, np.ndarray]:
    """``(FACE, FACE, 3)`` uint8 crops around the face of two bundled photos."""
    import cv2

    from exprsim.faces.pipeline import analyze_image
    from exprsim.io import load_image
    from exprsim.samples import sample_path

    out = {}
    for key, name in (("eileen", "astronaut_eileen_collins.jpg"), ("grace", "grace_hopper.jpg")):
        image = load_image(sample_path(name))
        x1, y1, x2, y2 = analyze_image(image)[0].face.box
        cx, cy, side = (x1 + x2) / 2, (y1 + y2) / 2, 1.4 * max(x2 - x1, y2 - y1)
        h, w = image.shape[:2]
        a = [round(cx - side / 2), round(cy - side / 2), round(cx + side / 2), round(cy + side / 2)]
        a = [max(0, a[0]), max(0, a[1]), min(w, a[2]), min(h, a[3])]
        crop = image[a[1] : a[3], a[0] : a[2]]
        out[key] = cv2.resize(crop, (FACE, FACE), interpolation=cv2.INTER_AREA)
    return out


def compose(
    patches: dict[str, np.ndarray], placed: dict[str, tuple[int, int]], seed: int = 0
) -> np.ndarray:
    """A frame of fixed textured background with ``{name: (x, y)}`` faces pasted in."""
    rng = np.random.default_rng(seed)
    frame = (
        (rng.integers(90, 130, size=(H // 8, W // 8, 3), dtype=np.uint8)).repeat(8, 0).repeat(8, 1)
    )
    frame = np.ascontiguousarray(frame)
    for name, (x, y) in placed.items():
        frame[y : y + FACE, x : x + FACE] = patches[name]
    return frame


@pytest.fixture(scope="session")
def embedder():
    """A randomly initialised embedder: the tests never need trained weights."""
    import torch

    from exprsim.models.embedder import Embedder, EmbedderConfig
    from exprsim.models.registry import create_model

    torch.manual_seed(0)
    return Embedder(create_model("exprnet_s"), EmbedderConfig(model="exprnet_s", version="test"))


@pytest.fixture(scope="session")
def clip_factory(tmp_path_factory) -> Callable[..., Path]:
    """``make(name, frames, **write_clip kwargs)`` -> a clip in a session temp folder."""
    root = tmp_path_factory.mktemp("clips")

    def make(name: str, frames: Sequence[np.ndarray], **kw) -> Path:
        return write_clip(root / name, frames, **kw)

    return make


#: frame size of the clips with faces (eleventh-round tests), and the side of a pasted face
CLIP_W, CLIP_H, FACE_SIDE = 320, 240, 120


def faces_frame(patches: dict[str, np.ndarray], placed: dict[str, int]) -> np.ndarray:
    """A 320x240 grey frame with ``{name: x}`` faces (120 px) pasted at y = 60."""
    import cv2

    frame = np.full((CLIP_H, CLIP_W, 3), 100, np.uint8)
    frame[:, :, 1] = 115
    for name, x in placed.items():
        frame[60 : 60 + FACE_SIDE, x : x + FACE_SIDE] = cv2.resize(
            patches[name], (FACE_SIDE, FACE_SIDE), interpolation=cv2.INTER_AREA
        )
    return frame


def analyze_interrupted(clip: Path, embedder: Any, at: int) -> Any:
    """``analyze_video`` of ``clip`` (5 frames a second, IoU identities, no classifier)
    whose detector raises Ctrl-C at its ``at``-th frame, keeping the partial analysis."""
    from exprsim.video import VideoConfig, analyze_video

    return analyze_video(
        clip,
        embedder,
        VideoConfig(fps=5, identity="iou"),
        classifier=None,
        detector=InterruptingDetector(at=at),
        keep_on_interrupt=True,
    )
