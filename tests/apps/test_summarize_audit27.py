"""Round 27 (docs/robustness.md): summaries of many clusters."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np
import pytest

from exprsim.errors import ExprsimError

mod = importlib.import_module("exprsim.apps.summarize")  # the package's name is the function


def _unit(rng, n, d=16):
    x = rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("method", ["complete-cosine", "ward", "average-cosine"])
def test_each_face_joins_the_nearest_centre_as_a_plain_loop_says(method) -> None:
    rng = np.random.default_rng(0)
    spec = mod.SUMMARY_METHODS[method]
    x = _unit(rng, 1500) * rng.uniform(0.5, 2.0, size=(1500, 1))  # lengths vary
    centres = np.stack([mod._centre(x[i : i + 30], spec.metric) for i in range(0, 600, 30)])
    got = mod._nearest_centre(x, centres, spec.metric)
    for i in range(0, 1500, 3):  # the reference: every centre, one by one, exact formulas
        if spec.metric == "cosine":
            d = [1 - float(x[i] @ c) / (np.linalg.norm(x[i]) * np.linalg.norm(c)) for c in centres]
        else:
            d = [float(np.sqrt(((x[i] - c) ** 2).sum())) for c in centres]
        assert got[i] == int(np.argmin(d)), i


def test_the_nearest_centre_goes_block_by_block(monkeypatch) -> None:
    rng = np.random.default_rng(1)
    x, centres = _unit(rng, 500), _unit(rng, 37)
    whole = mod._nearest_centre(x, centres, "cosine")
    monkeypatch.setattr(mod, "NEAREST_BLOCK", 500 * 4)  # 4 centres a block, a ragged last one
    assert (mod._nearest_centre(x, centres, "cosine") == whole).all()
    copies = np.repeat(centres[:1], 3, axis=0)  # a tie: the lower centre, as argmin
    assert (mod._nearest_centre(x[:5], copies, "cosine") == 0).all()


def test_more_clusters_than_a_summary_holds_are_refused_whatever_the_faces() -> None:
    x = _unit(np.random.default_rng(2), 30)
    with pytest.raises(ExprsimError, match=r"at most 20,000.*got 30000"):
        mod.summarize(x, n_clusters=30_000)  # was: 30 clusters, a warning


def test_the_command_line_refuses_too_many_clusters_before_reading(tmp_path, capsys) -> None:
    from exprsim.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["-q", "summarize", str(tmp_path / "none"), "-n", "30000"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "must be <= 20000, got 30000" in err  # was: photos read first


@dataclass(frozen=True)
class _Item:
    source: str
    face_index: int
    embedding: np.ndarray
    crop: np.ndarray


def test_a_page_of_many_clusters_shows_the_largest_only(monkeypatch) -> None:
    from exprsim.report import plots

    monkeypatch.setattr(plots, "embedding_map", lambda *a, **k: b"png")
    sizes: list[int] = []
    monkeypatch.setattr(
        plots, "similarity_heatmap", lambda emb, **k: sizes.append(len(emb)) or b"png"
    )
    monkeypatch.setattr(mod, "PAGE_CLUSTERS", 5)
    x = _unit(np.random.default_rng(3), 40)
    items = [_Item(f"f{i}.jpg", 0, e, np.full((8, 8, 3), 9, np.uint8)) for i, e in enumerate(x)]
    summary = mod.summarize(items, n_clusters=12)
    html = mod.summary_page(summary).render()
    assert html.count("<h3>") == 5  # was 12 strips (60 KB of pictures each)
    assert "the 5 largest of 12" in html
    assert sizes == [5]  # was 12: a heat map quadratic in the clusters


def test_the_two_faces_of_a_two_face_cluster_tie_and_the_first_represents_it() -> None:
    rng = np.random.default_rng(4)
    picked = []
    for _ in range(40):  # pairs whose two distances to their mean differ by rounding only
        pair = _unit(rng, 2) * rng.uniform(0.3, 3.0)
        for method in ("ward", "complete-cosine"):
            s = mod.summarize(pair, n_clusters=1, method=method)
            picked.append(s.clusters[0].representative)
    assert set(picked) == {0}  # was 0 or 1, by rounding noise


def test_faces_far_from_the_origin_join_their_nearest_centre() -> None:
    rng = np.random.default_rng(5)
    x = 1e6 + rng.normal(scale=0.05, size=(2000, 16))  # a large shared offset
    centres = np.stack([x[i : i + 40].mean(axis=0) for i in range(0, 800, 40)])
    got = mod._nearest_centre(x, centres, "euclidean")
    diffs = x[:, None, :] - centres[None]  # the reference: direct differences
    want = np.argmin((diffs**2).sum(axis=-1), axis=1)
    assert (got == want).mean() > 0.999  # review: 2,947 of 4,000 wrong at such an offset
