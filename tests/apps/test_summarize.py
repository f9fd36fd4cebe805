"""Album summaries on synthetic clustered embeddings (known answer)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from exprsim.apps.summarize import SUMMARY_METHODS, summarize, summary_page
from exprsim.errors import ExprsimError

SIZES = (3, 10, 5, 7)  # deliberately not sorted


def blobs(seed: int = 0, noise: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.eye(16, dtype=np.float64)[[0, 3, 7, 12]]
    x, y = [], []
    for c, size in enumerate(SIZES):
        pts = centres[c] + noise * rng.standard_normal((size, 16))
        x.append(pts / np.linalg.norm(pts, axis=1, keepdims=True))
        y += [c] * size
    perm = rng.permutation(sum(SIZES))
    return np.concatenate(x)[perm].astype(np.float32), np.array(y)[perm]


@pytest.mark.parametrize("method", sorted(SUMMARY_METHODS))
def test_known_clusters(method: str) -> None:
    x, y = blobs()
    s = summarize(x, n_clusters=4, method=method)
    assert [c.size for c in s.clusters] == [10, 7, 5, 3]
    for c in s.clusters:  # each cluster is exactly one blob
        assert len(set(y[list(c.members)])) == 1
    assert (np.bincount(s.labels) == [10, 7, 5, 3]).all()
    for c in s.clusters:  # representative: the member closest to the centre (naive check)
        members = list(c.members)
        centre = x[members].astype(np.float64).mean(axis=0)
        if SUMMARY_METHODS[method].metric == "cosine":
            centre /= np.linalg.norm(centre)
            d = [1 - float(x[m] @ centre) / float(np.linalg.norm(x[m])) for m in members]
        else:
            d = [float(np.linalg.norm(x[m] - centre)) for m in members]
        assert c.representative == members[int(np.argmin(d))]
        assert (np.diff(c.distances) >= 0).all()
        np.testing.assert_allclose(sorted(d), c.distances, atol=1e-6)
    frame = s.to_frame()
    assert len(frame) == len(x) and frame["representative"].sum() == 4


@pytest.mark.parametrize("method", sorted(SUMMARY_METHODS))
def test_large_inputs_cluster_a_sample_and_find_the_same_groups(method: str) -> None:
    """Beyond ``max_exact`` items the linkage runs on an even sample and every item joins
    the nearest centre: on well separated blobs the partition is the exact one."""
    x, _ = blobs(noise=0.03)
    exact = summarize(x, n_clusters=4, method=method)
    sampled = summarize(x, n_clusters=4, method=method, max_exact=12)
    assert [c.members for c in sampled.clusters] == [c.members for c in exact.clusters]
    np.testing.assert_array_equal(sampled.labels, exact.labels)
    assert sampled.labels.shape == (len(x),)


def test_edge_cases() -> None:
    x, _ = blobs()
    s = summarize(x[:3], n_clusters=10)
    assert len(s.clusters) == 3 and all(c.size == 1 for c in s.clusters)
    assert [c.representative for c in s.clusters] == [0, 1, 2]
    one = summarize(x[:5], n_clusters=1)
    assert one.clusters[0].size == 5 and one.labels.tolist() == [0] * 5
    with pytest.raises(ExprsimError, match="no faces"):
        summarize(np.zeros((0, 16)))
    with pytest.raises(ExprsimError, match="unknown summary method"):
        summarize(x, method="kmeans")


@pytest.mark.parametrize("method", sorted(SUMMARY_METHODS))
def test_copies_of_one_face_share_a_cluster(method: str, caplog) -> None:
    """80 copies of one photo plus 3 other faces, 10 clusters asked: 4 clusters (one per
    distinct face), not 10 with the copies spread over singleton clusters."""
    x, _ = blobs()
    album = np.vstack([np.repeat(x[:1], 80, axis=0), x[1:4]])
    with caplog.at_level("WARNING"):
        s = summarize(album, n_clusters=10, method=method)
    assert len(s.clusters) == 4 and s.clusters[0].size == 80
    assert set(s.labels[:80].tolist()) == {0}
    assert "4 distinct faces among 83" in caplog.text


@dataclass(frozen=True)
class Item:
    source: str
    face_index: int
    embedding: np.ndarray
    crop: np.ndarray


def test_items_and_page() -> None:
    x, y = blobs()
    items = [
        Item(f"img{i}.jpg", 0, e, np.full((16, 16, 3), 40 * y[i], np.uint8))
        for i, e in enumerate(x)
    ]
    s = summarize(items, n_clusters=4, method="ward")
    assert s.items is not None and s.to_frame()["source"].iloc[0].startswith("img")
    html = summary_page(s).render()
    assert html.count("<h3>") == 4 and "data:image/png;base64," in html


def test_a_sample_smaller_than_the_cluster_count_and_bad_values() -> None:
    x, _ = blobs(noise=0.03)
    tiny = summarize(x, n_clusters=4, max_exact=2)  # the sample grows to one face per cluster
    assert len(tiny.clusters) == 4 and tiny.labels.shape == (len(x),)
    bad = x.copy()
    bad[3, 0] = np.nan
    with pytest.raises(ExprsimError, match="finite"):
        summarize(bad, n_clusters=2)
    zero = x.copy()
    zero[0] = 0.0
    cosine = [m for m in SUMMARY_METHODS if SUMMARY_METHODS[m].metric == "cosine"]
    for method in cosine:
        with pytest.raises(ExprsimError, match="all-zero"):
            summarize(zero, n_clusters=2, method=method)
