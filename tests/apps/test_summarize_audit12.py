"""Twelfth-round audit of `summarize`: the result does not depend on the embeddings'
scale (1e-7 collapsed into one cluster, 1e-200 was "all-zero", 1e200 and ragged lists were
raw SciPy / NumPy errors), and `--quality-only` with every face failing says so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from exprsim.apps.summarize import summarize, summarize_images
from exprsim.errors import ExprsimError
from exprsim.faces.types import AlignedFace, Face, Quality
from exprsim.models.embedder import FaceEmbedding


def _three_groups() -> np.ndarray:
    rng = np.random.default_rng(0)
    x = np.repeat(rng.normal(size=(3, 16)), 4, axis=0) + rng.normal(size=(12, 16)) * 0.05
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("method", ["complete-cosine", "average-cosine", "ward"])
@pytest.mark.parametrize("scale", [1e-200, 1e-7, 1e-4, 1e7, 1e30])
def test_summary_does_not_depend_on_the_scale(method: str, scale: float) -> None:
    """The audit's case: 3 clear groups of 4 gave [12] at 1e-7 ("only 1 distinct faces")
    and an "all-zero embedding" error at 1e-200; 1e-4 .. 1e30 worked before (guards)."""
    x = _three_groups()
    ref = summarize(x, n_clusters=3, method=method)
    got = summarize(x * scale, n_clusters=3, method=method)
    assert [c.members for c in got.clusters] == [c.members for c in ref.clusters]
    assert [c.size for c in got.clusters] == [4, 4, 4]
    unit = 1.0 if method != "ward" else scale  # ward reports distances in the input's units
    for a, b in zip(got.clusters, ref.clusters, strict=True):
        np.testing.assert_allclose(a.distances, b.distances * unit, rtol=1e-9, atol=0)


@pytest.mark.parametrize("scale", [1e-7, 1e200])
def test_cosine_summary_matches_sklearn_at_any_scale(scale: float) -> None:
    cluster = pytest.importorskip("sklearn.cluster")
    x = _three_groups()
    ref = cluster.AgglomerativeClustering(3, metric="cosine", linkage="complete").fit_predict(x)
    got = summarize(x * scale, n_clusters=3).labels
    pairs = {(int(a), int(b)) for a, b in zip(got, ref, strict=True)}
    assert len(pairs) == len(set(got.tolist())) == len(set(ref.tolist())) == 3


def test_huge_cosine_embeddings_are_summarised() -> None:
    """1e200 was a raw SciPy ValueError (non-finite condensed distances)."""
    s = summarize(_three_groups() * 1e200, n_clusters=3)
    assert sorted(c.size for c in s.clusters) == [4, 4, 4]
    assert all(np.isclose(np.linalg.norm(c.centre), 1.0) for c in s.clusters)


def test_copies_of_small_faces_still_count_once() -> None:
    """Copies stay one face at every scale: 3 distinct faces among 12 -> 3 clusters."""
    x = np.repeat(_three_groups()[::4], 4, axis=0) * 1e-7
    s = summarize(x, n_clusters=5)
    assert [c.size for c in s.clusters] == [4, 4, 4]


@pytest.mark.parametrize(
    ("items", "method", "match"),
    [
        ([[1.0, 2.0], [3.0]], "complete-cosine", "the same number for every face"),
        ([["a", "b"], [1.0, 2.0]], "ward", "not numbers"),
        (np.full((4, 3), 1e200), "ward", "beyond float32's range"),
        (np.vstack([np.eye(2, 3), np.zeros((1, 3))]) * 1e-200, "complete-cosine", "all-zero"),
    ],
)
def test_bad_embeddings_are_one_line(items: Any, method: str, match: str) -> None:
    """Ragged rows, strings and 1e200 under ward were raw NumPy / SciPy errors; a real
    all-zero row beside 1e-200 ones is refused as before (guard)."""
    with pytest.raises(ExprsimError, match=match) as info:
        summarize(items, n_clusters=2, method=method)
    assert "\n" not in str(info.value)


def _face(source: str, reasons: tuple[str, ...], seed: int) -> FaceEmbedding:
    face = Face(np.array([0, 0, 32, 32], np.float32), 0.9, np.zeros((5, 2), np.float32), "fake")
    quality = Quality(1.0, 0.0, 0.0, 0.0, ok=not reasons, reasons=reasons)
    crop = np.zeros((32, 32, 3), np.uint8)
    emb = np.random.default_rng(seed).normal(size=16).astype(np.float32)
    return FaceEmbedding(source, 0, AlignedFace(face, crop, quality), emb / np.linalg.norm(emb))


class _Embedder:
    """Each image has one face; its quality reasons come from ``reasons`` in file order."""

    def __init__(self, reasons: list[tuple[str, ...]]) -> None:
        self.reasons = reasons

    def embed_images(self, images: Any, **_: Any) -> list[FaceEmbedding]:
        files = sorted(str(p) for p in images)
        return [_face(f, r, i) for i, (f, r) in enumerate(zip(files, self.reasons, strict=True))]


def _images(folder: Path, n: int) -> list[Path]:
    folder.mkdir(exist_ok=True)
    paths = [folder / f"img{i}.png" for i in range(n)]
    for p in paths:
        Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(p)
    return paths


REASONS = [("blur",), ("blur",), ("blur", "yaw"), ("edge",)]


def test_quality_only_with_every_face_failing_says_so(tmp_path: Path) -> None:
    """Was "nothing to summarise: no faces" although 4 faces were found."""
    paths = _images(tmp_path / "album", 4)
    with pytest.raises(ExprsimError) as info:
        summarize_images(paths, n_clusters=2, embedder=_Embedder(REASONS), quality_only=True)
    msg = str(info.value)
    assert "all 4 faces found failed the quality check" in msg
    assert "(blur: 3, edge: 1, yaw: 1)" in msg and "without --quality-only" in msg
    assert "\n" not in msg
    kept = summarize_images(paths, n_clusters=2, embedder=_Embedder(REASONS))
    assert len(kept.labels) == 4  # without the option every face is summarised


def test_quality_only_cli_message(tmp_path: Path, monkeypatch, capsys) -> None:
    from exprsim.cli import apps_cmd, main

    paths = _images(tmp_path / "album", 4)
    monkeypatch.setattr(apps_cmd, "_embedder", lambda args: _Embedder(REASONS))
    rc = main(["-q", "summarize", *map(str, paths), "--quality-only", "-n", "2"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "all 4 faces found failed the quality check (blur: 3" in err
    assert "no faces" not in err


def test_quality_only_keeps_working_when_some_faces_pass(tmp_path: Path) -> None:
    """Guard: faces passing the check are summarised with their numbers among all faces."""
    paths = _images(tmp_path / "album", 4)
    reasons = [("blur",), (), (), ("yaw",)]
    s = summarize_images(paths, n_clusters=2, embedder=_Embedder(reasons), quality_only=True)
    assert s.numbers == (1, 2) and len(s.labels) == 2
