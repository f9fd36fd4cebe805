"""Twelfth-round audit of the embedding map: t-SNE ran over every face (76 s at 5,000
faces, 321 s at 20,000, for each `summarize --html` and each web map). Above
MAP_MAX_POINTS a fixed-seed sample is mapped, every cluster kept, and the title says so."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest

from exprsim.report import plots


class _FakeTSNE:
    """Stands in for sklearn's TSNE: records how many rows it was asked to map."""

    sizes: ClassVar[list[int]] = []

    def __init__(self, **_: Any) -> None:
        pass

    def fit_transform(self, x: np.ndarray) -> np.ndarray:
        _FakeTSNE.sizes.append(len(x))
        return np.random.default_rng(0).normal(size=(len(x), 2))


@pytest.fixture
def fake_tsne(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    pytest.importorskip("sklearn.manifold")
    monkeypatch.setattr("sklearn.manifold.TSNE", _FakeTSNE)
    _FakeTSNE.sizes = []
    return _FakeTSNE.sizes


@pytest.fixture
def titles(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[str]]]:
    """(title, legend labels) of every map drawn; nothing is rendered."""
    seen: list[tuple[str, list[str]]] = []

    def capture(fig: Any, dpi: int = 110) -> bytes:
        ax = fig.axes[0]
        seen.append((ax.get_title(), ax.get_legend_handles_labels()[1]))
        return b"\x89PNG\r\n\x1a\n"

    monkeypatch.setattr(plots, "fig_to_png", capture)
    return seen


def _faces(n: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """``n`` unit rows in 6 clusters, one of them only 2 faces."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(1, 6, n)
    labels[[17, n - 3]] = 6  # a cluster of 2 among n
    centres = rng.normal(size=(7, 16))
    x = centres[labels] + 0.1 * rng.normal(size=(n, 16))
    return x / np.linalg.norm(x, axis=1, keepdims=True), [str(v) for v in labels]


def test_a_large_map_is_a_labelled_sample(fake_tsne: list[int], titles: list[Any]) -> None:
    """10,000 faces: t-SNE gets at most MAP_MAX_POINTS rows (was all 10,000), every
    cluster, even the one of 2 faces, is on the map, and the title names the sample."""
    x, labels = _faces(10_000)
    plots.embedding_map(x, labels=labels, method="tsne")
    assert fake_tsne == [plots.MAP_MAX_POINTS] and plots.MAP_MAX_POINTS == 2000
    title, legend = titles[-1]
    assert "a sample of 2000 of 10000 faces" in title
    assert sorted(legend) == sorted(set(labels))


def test_the_sample_is_fixed_and_keeps_every_label() -> None:
    _, labels = _faces(5000, seed=3)
    a = plots.map_sample(5000, labels, max_points=300, seed=0)
    assert np.array_equal(a, plots.map_sample(5000, labels, max_points=300, seed=0))
    assert len(a) == 300 and np.all(np.diff(a) > 0)
    assert {labels[i] for i in a} == set(labels)
    counts = np.bincount(np.asarray(labels, dtype=int)[a])  # about the labels' shares
    assert counts[1:6].min() > 30
    assert len(plots.map_sample(5000, None, max_points=300)) == 300
    assert plots.map_sample(10, labels[:10]).tolist() == list(range(10))


def test_thumbnails_follow_the_sample(
    fake_tsne: list[int], titles: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The thumbnails drawn are those of the sampled faces (each crop's value = its row)."""
    x, labels = _faces(3000)
    thumbs = [np.full((4, 4), i % 256, np.uint8) for i in range(3000)]
    drawn: list[Any] = []
    real = plots._draw_map
    monkeypatch.setattr(plots, "_draw_map", lambda xy, t, *a: drawn.append(t) or real(xy, t, *a))
    plots.embedding_map(x, thumbnails=thumbs, labels=labels, method="tsne")
    pick = plots.map_sample(3000, labels)
    assert [int(t[0, 0]) for t in drawn[0]] == [i % 256 for i in pick]


def test_small_and_pca_maps_show_every_face(fake_tsne: list[int], titles: list[Any]) -> None:
    """Guards: up to the bound t-SNE maps every face with the usual title; PCA (fast)
    maps all 10,000."""
    x, labels = _faces(500)
    plots.embedding_map(x, labels=labels, method="tsne")
    assert fake_tsne == [500] and "sample" not in titles[-1][0]
    x, labels = _faces(10_000)
    plots.embedding_map(x, labels=labels, method="pca")
    assert fake_tsne == [500] and "sample" not in titles[-1][0]


def test_summary_page_names_the_sample(fake_tsne: list[int], titles: list[Any]) -> None:
    from types import SimpleNamespace

    from exprsim.apps.summarize import summarize, summary_page

    x, _ = _faces(2500)
    crop = np.zeros((8, 8, 3), np.uint8)
    items = [SimpleNamespace(embedding=e, aligned=SimpleNamespace(crop=crop)) for e in x]
    html = summary_page(summarize(items, n_clusters=4)).render()
    assert "Map of the faces (a sample of 2000 of 2500)" in html
    assert fake_tsne == [2000] and "a sample of 2000 of 2500 faces" in titles[0][0]


def test_small_and_huge_embeddings_get_a_tsne_map(fake_tsne: list[int]) -> None:
    """1e-7 embeddings counted as one distinct face, so the map fell back to PCA; t-SNE
    gets the rows times a power of two (1e200 squares overflowed)."""
    x, _ = _faces(40)
    for scale in (1e-200, 1e-7, 1.0, 1e200):
        xy, used = plots.project_2d(x * scale, "tsne")
        assert used == "tsne" and xy.shape == (40, 2), scale
    assert fake_tsne == [40] * 4
    xy, used = plots.project_2d(np.repeat(x[:3] * 1e-7, 10, axis=0), "tsne")
    assert used == "pca" and np.isfinite(xy).all()  # 3 distinct faces: PCA, as before


def test_pca_coordinates_are_in_the_embeddings_own_units():
    """Review finding: the power-of-two scaling leaked into PCA's output (2x on unit rows)."""
    from exprsim.report.plots import project_2d

    rng = np.random.default_rng(0)
    for scale in (1.0, 1e-7, 3.0):
        x = rng.normal(size=(40, 16)) * scale
        got, method = project_2d(x, "pca")
        xc = x - x.mean(axis=0)
        _, _, vt = np.linalg.svd(xc, full_matrices=False)
        assert method == "pca"
        np.testing.assert_allclose(got, xc @ vt[:2].T, rtol=1e-9, atol=1e-12 * scale)
