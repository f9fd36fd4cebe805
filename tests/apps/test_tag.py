"""Reference-face tagging: threshold behaviour, stored references, calibration vs a naive loop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from stub_embedder import StubEmbedder, grid_embedding, write_images

from exprsim.apps.tag import (
    DEFAULT_THRESHOLD,
    Tagger,
    calibrate_threshold,
    calibration_page,
    match_tags,
    tag_page,
)
from exprsim.errors import ExprsimError
from exprsim.index.store import FaceIndex, ModelMismatchError
from exprsim.io import load_image


def at_distance(base: np.ndarray, other: np.ndarray, d: float) -> np.ndarray:
    """A unit vector at Euclidean distance ``d`` from unit vector ``base`` (in its plane with ``other``)."""
    theta = 2 * np.arcsin(d / 2)
    return np.cos(theta) * base + np.sin(theta) * other


def test_threshold_behaviour() -> None:
    e = np.eye(16)
    refs = np.stack([e[0], e[1], e[0] * 0 + at_distance(e[0], e[2], 0.45)])
    names = ["smile", "frown", "smile"]
    faces = np.stack([at_distance(e[0], e[3], 0.3), at_distance(e[1], e[3], 0.49), e[5]])
    out = match_tags(faces, refs, names, threshold=0.5)
    assert out[0][0] == ("smile",) and out[0][1]["smile"] == pytest.approx(0.3, abs=1e-9)
    assert out[1][0] == ("frown",)
    assert out[2][0] == ()  # unrelated face: sqrt(2) from everything
    assert out[2][1]["frown"] == pytest.approx(np.sqrt(2))
    assert match_tags(faces, refs, names, threshold=0.2)[0][0] == ()
    # strictly below: a face exactly at the threshold is not tagged
    assert match_tags(faces[:1], refs, names, threshold=out[0][1]["smile"])[0][0] == ()
    # both tags, nearest first
    both = match_tags(at_distance(e[0], e[1], 0.6)[None], refs, names, threshold=1.5)[0][0]
    assert both == ("smile", "frown")
    assert match_tags(faces, np.zeros((0, 16)), [], 0.5) == [((), {})] * 3


def test_tagger_with_index(tmp_path: Path, stub: StubEmbedder) -> None:
    imgs = write_images(tmp_path / "imgs", 6)
    with FaceIndex(tmp_path / "faces.db", embedder=stub) as index:
        tagger = Tagger(index)
        with pytest.raises(ExprsimError, match="no reference faces"):
            tagger.tag(imgs[:1])
        tagger.add("first", imgs[0])
        tagger.add("second", imgs[1])
        tagger.add("second", imgs[2])
        assert tagger.names() == ["first", "second"] and len(tagger.references()) == 3
        res = tagger.tag(imgs[:4], threshold=1e-3)
        assert [r.tags for r in res] == [("first",), ("second",), ("second",), ()]
        assert res[3].best is None and res[0].best == "first"
        e3 = grid_embedding(load_image(imgs[3]))
        d_first = float(np.linalg.norm(e3 - grid_embedding(load_image(imgs[0]))))
        assert res[3].distances["first"] == pytest.approx(d_first, abs=1e-5)
        loose = tagger.tag(imgs[3:4], threshold=d_first + 1e-3)[0]
        assert "first" in loose.tags
        frame = res.to_frame()
        assert list(frame["tags"]) == ["first", "second", "second", ""] and "d_first" in frame
        assert "data:image/" in tag_page(res, tagger.references()).render()
        assert tagger.remove("second") == 2 and tagger.names() == ["first"]
        index.add(imgs)
        assert Tagger(index, threshold=1e-3).tag_index() == 1
        tagged = [r for r in index.records() if r.tags]
        assert [(Path(r.source).name, r.tags) for r in tagged] == [("img_0000.png", ("first",))]
        with pytest.raises(ModelMismatchError):
            Tagger(index, embedder=StubEmbedder("other@1")).add("x", imgs[0])
    assert DEFAULT_THRESHOLD == 0.5


def naive_calibration(x, y, ref_idx, thresholds):
    cand = [i for i in range(len(x)) if i not in set(ref_idx)]
    out = []
    for t in thresholds:
        tp = fp = fn = 0
        for r in ref_idx:
            for c in cand:
                d = float(np.linalg.norm(x[r] - x[c]))
                same = y[r] == y[c]
                if d < t and same:
                    tp += 1
                elif d < t:
                    fp += 1
                elif same:
                    fn += 1
        out.append((tp / (tp + fp) if tp + fp else 1.0, tp / (tp + fn)))
    return out


def test_calibration_matches_naive_loop() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 40)
    x = np.eye(16)[y] + 0.5 * rng.standard_normal((40, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    thresholds = np.array([0.0, 0.4, 0.8, 1.0, 1.2, 2.0])
    cal = calibrate_threshold(x, y, refs_per_class=3, thresholds=thresholds, seed=1)
    assert cal.n_references == 9 and cal.n_candidates == 31 and cal.n_pairs == 9 * 31
    # recover the references the calibration drew (same seed, same procedure)
    r = np.random.default_rng(1)
    ref_idx = np.sort(
        np.concatenate([r.choice(np.flatnonzero(y == c), 3, replace=False) for c in range(3)])
    )
    ref = naive_calibration(x, y, ref_idx.tolist(), thresholds)
    np.testing.assert_allclose(cal.precision, [p for p, _ in ref])
    np.testing.assert_allclose(cal.recall, [q for _, q in ref])
    assert cal.recall[0] == 0 and cal.recall[-1] == 1.0
    assert cal.at(0.41)["threshold"] == 0.4 and len(cal.to_frame()) == 6
    assert cal.plot()[:4] == b"\x89PNG"


def test_calibration_page() -> None:
    """``exprsim tag calibrate --html``: the curve, the model's operating point, the table."""
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 20)
    x = np.eye(16)[y] + 0.3 * rng.standard_normal((20, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    cal = calibrate_threshold(x, y, refs_per_class=2, description="twenty faces")
    html = calibration_page(cal).render()
    assert "threshold calibration" in html and "twenty faces" in html
    assert html.count("<table") == 2 and "data:image/" in html
