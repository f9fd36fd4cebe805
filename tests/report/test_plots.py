"""Plots return PNG bytes and handle edge cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from exprsim.report import plots

PNG = b"\x89PNG\r\n\x1a\n"


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.fixture
def emb() -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((30, 16)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_embedding_map(emb: np.ndarray, method: str) -> None:
    thumbs = [np.full((16, 16, 3), i * 8, np.uint8) for i in range(30)]
    w, h = _png_size(plots.embedding_map(emb, thumbs, method=method))
    assert w > 300 and h > 300
    assert plots.embedding_map(emb, labels=["a", "b", "c"] * 10, method="pca")[:8] == PNG


def test_project_2d_small_and_bad() -> None:
    xy, used = plots.project_2d(np.eye(3, 16), "tsne")
    assert xy.shape == (3, 2) and used == "pca"
    assert plots.project_2d(np.zeros((0, 16)))[0].shape == (0, 2)
    with pytest.raises(ValueError):
        plots.project_2d(np.eye(3, 16), "mds")


@pytest.mark.parametrize("method", ["auto", "tsne"])
def test_project_2d_identical_faces_fall_back_to_pca(method: str) -> None:
    """80 copies of one face (and 3 distinct faces among 60 rows): t-SNE diverged on such
    sets (NaN gradient, a ValueError out of `exprsim subclasses`); PCA maps them."""
    same = np.tile(np.eye(1, 16), (80, 1))
    xy, used = plots.project_2d(same, method)
    assert used == "pca" and xy.shape == (80, 2) and np.isfinite(xy).all()
    three = np.repeat(np.eye(3, 16), 20, axis=0)
    xy, used = plots.project_2d(three, method)
    assert used == "pca" and np.isfinite(xy).all()
    assert len(np.unique(xy.round(9), axis=0)) == 3  # still three places on the map


def test_other_plots(emb: np.ndarray) -> None:
    assert _png_size(plots.similarity_heatmap(emb[:5], labels=list("abcde")))[0] > 100
    assert plots.similarity_heatmap(emb)[:8] == PNG
    crops = [np.zeros((12, 12, 3), np.uint8)] * 3
    montage = plots.cluster_montage([crops, crops[:1]], titles=["1", "2"], per_row=4)
    assert montage[:3] == b"\xff\xd8\xff"  # JPEG (round 24: a PNG of photos, 5x larger)
    t = np.linspace(0, 2, 21)
    assert plots.pr_curve(np.linspace(1, 0.2, 21), np.linspace(0, 1, 21), t)[:8] == PNG
    assert plots.pr_curve(np.array([1.0, 0.5]), np.array([0.1, 1.0]), mark=None)[:8] == PNG
    assert plots.line_plot([1, 5, 11], {"acc": [0.5, 0.6, 0.7]}, "K", "acc", logx=True)[:8] == PNG


def test_many_labels_get_distinct_styles():
    from exprsim.report.plots import embedding_map, label_styles

    styles = label_styles(40)  # FER+ with 5 sub-expressions per class
    assert len({(tuple(c), m) for c, m in styles}) == 40  # were 10 colours, repeated
    assert len({tuple(c) for c, _ in label_styles(10)}) == 10
    rng = np.random.default_rng(0)
    e = rng.normal(size=(80, 16))
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    png = embedding_map(e, labels=[f"class-{i % 40}" for i in range(80)], method="pca")
    assert png[:4] == b"\x89PNG"


def test_labels_never_differ_by_colour_alone():
    """Round 28 (accessibility audit, WCAG 1.4.1): up to 10 labels all had the marker "o"."""
    from exprsim.report.plots import label_styles

    for n in (2, 3, 8, 10, 20, 40):
        styles = label_styles(n)
        for a, b in itertools.pairwise(styles):  # neighbours: another marker
            assert a[1] != b[1]
        assert len({m for _, m in styles}) == min(n, 8)
        assert len({(tuple(c), m) for c, m in styles}) == n
