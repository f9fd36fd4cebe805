"""A fast, deterministic stand-in for ``Embedder`` (no face detection, no network).

Each image yields one face whose embedding is the L2-normalised 4x4 grid of its gray-level
means minus their mean; an all-black image yields no face. ``delay`` seconds are slept per
image so that a test can kill an ``add`` half-way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from exprsim.errors import ImageError
from exprsim.faces.stream import read_item, source_name
from exprsim.faces.types import AlignedFace, Face, Quality
from exprsim.models.embedder import FaceEmbedding, ImageEmbeddings


@dataclass(frozen=True)
class StubConfig:
    name_version: str = "stub@1"


def grid_embedding(image: np.ndarray) -> np.ndarray:
    gray = image.astype(np.float32).mean(axis=2)
    h, w = gray.shape
    cells = gray[: h // 4 * 4, : w // 4 * 4].reshape(4, h // 4, 4, w // 4).mean(axis=(1, 3))
    v = cells.reshape(16) - cells.mean()
    n = np.linalg.norm(v)
    if n < 1e-6:
        v = np.eye(16, dtype=np.float32)[0]
        n = 1.0
    return (v / n).astype(np.float32)


def _detector_name(detector) -> str:
    """The name the real pipeline records for ``detector`` (``None``: the default's)."""
    from exprsim.faces.detect import DEFAULT_DETECTOR

    if detector is None:
        return DEFAULT_DETECTOR
    return detector if isinstance(detector, str) else getattr(detector, "name", "stub")


class StubEmbedder:
    def __init__(self, name_version: str = "stub@1", delay: float = 0.0) -> None:
        self.config = StubConfig(name_version)
        self.delay = delay
        self.calls = 0

    def embed_stream(self, images, detector=None, workers=None):
        """One ``ImageEmbeddings`` per input, as ``Embedder.embed_stream``."""
        for index, item in enumerate(images):
            self.calls += 1
            if self.delay:
                time.sleep(self.delay)
            source = source_name(item)
            try:
                img = read_item(item)
            except ImageError as exc:
                yield ImageEmbeddings(index, source, (), exc)
                continue
            faces = ()
            if img.max() > 0:
                h, w = img.shape[:2]
                face = Face(
                    box=np.array([0, 0, w, h], np.float32),
                    score=0.9,
                    landmarks=np.zeros((5, 2), np.float32),
                    detector=_detector_name(detector),
                )
                crop = np.asarray(Image.fromarray(img).resize((32, 32)))
                quality = Quality(sharpness=float(img.std()), yaw=0.0, pitch=0.0, roll=0.0, ok=True)
                aligned = AlignedFace(face, crop, quality)
                faces = (FaceEmbedding(source, 0, aligned, grid_embedding(img)),)
            yield ImageEmbeddings(index, source, faces)

    def embed_images(self, images, detector=None, progress=False, failures=None):
        out = []
        for item in self.embed_stream(images, detector):
            if item.error is not None:
                if failures is None:
                    raise item.error
                failures.append(item.error)  # as Embedder.embed_images: skip and report
                continue
            out.extend(item.faces)
        return out


def write_images(folder: Path, n: int, seed: int = 0, size: int = 32) -> list[Path]:
    """``n`` random PNG images (distinct content) under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        arr = rng.integers(1, 255, size=(size, size, 3), dtype=np.uint8)
        p = folder / f"img_{i:04d}.png"
        Image.fromarray(arr).save(p)
        paths.append(p)
    return paths
