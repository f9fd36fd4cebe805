"""Round 33: an album's summary does not depend on the order its files are named in (two
copies of one photo tied for their cluster's representative, and the first named won)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from exprsim.apps.summarize import summarize_images
from exprsim.faces.types import AlignedFace, Face, Quality
from exprsim.models.embedder import FaceEmbedding


class _ByContent:
    """One face per image; its embedding a function of the file's bytes (copies tie)."""

    def embed_images(self, images: Any, **_: Any) -> list[FaceEmbedding]:
        out = []
        for p in images:
            seed = int(hashlib.sha256(Path(p).read_bytes()).hexdigest()[:8], 16)
            emb = np.random.default_rng(seed).normal(size=16).astype(np.float32)
            box = np.array([0, 0, 32, 32], np.float32)
            face = Face(box, 0.9, np.zeros((5, 2), np.float32), "fake")
            aligned = AlignedFace(
                face, np.zeros((32, 32, 3), np.uint8), Quality(1, 0, 0, 0, ok=True)
            )
            out.append(FaceEmbedding(str(p), 0, aligned, emb / np.linalg.norm(emb)))
        return out


def _album(folder: Path) -> list[Path]:
    folder.mkdir()
    paths = []
    for i, name in enumerate(["a_copy.png", "b.png", "c.png", "d.png", "z_copy.png"]):
        value = 7 if "copy" in name else 40 * i
        Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(folder / name)
        paths.append(folder / name)
    return paths


def _picked(summary: Any) -> list[tuple[str, ...]]:
    return [
        (
            Path(summary.items[c.representative].source).name,
            *sorted(Path(summary.items[m].source).name for m in c.members),
        )
        for c in summary.clusters
    ]


def test_the_summary_is_the_same_in_any_order(tmp_path: Path) -> None:
    paths = _album(tmp_path / "album")
    forward = summarize_images(paths, n_clusters=4, embedder=_ByContent())
    backward = summarize_images(paths[::-1], n_clusters=4, embedder=_ByContent())
    assert _picked(forward) == _picked(backward)
    (copies,) = [c for c in _picked(forward) if len(c) == 3]
    assert copies == ("a_copy.png", "a_copy.png", "z_copy.png")  # the first by name
