"""Expression search: exclusions, filters, ordering, errors (stub embedder; fast)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from stub_embedder import StubEmbedder

from exprsim.apps.search import search, search_page
from exprsim.errors import BackendUnavailableError, ImageError
from exprsim.index.store import FaceIndex, ModelMismatchError


@pytest.fixture
def index(image_index) -> FaceIndex:
    return image_index(30)


def brute_force(index: FaceIndex, q: np.ndarray, keep=lambda r: True) -> list[tuple[int, float]]:
    recs = [r for r in index.records() if keep(r)]
    d = [(r.id, float(np.linalg.norm(r.embedding.astype(np.float64) - q))) for r in recs]
    return sorted(d, key=lambda t: (t[1], t[0]))


def test_search_excludes_own_image_and_matches_brute_force(
    index: FaceIndex, tmp_path: Path
) -> None:
    query = tmp_path / "imgs" / "img_0007.png"
    res = search(query, index, k=5)
    own = str(query.resolve())
    ref = brute_force(index, res.query_embedding.astype(np.float64), lambda r: r.source != own)[:5]
    assert [h.face_id for h in res.hits] == [i for i, _ in ref]
    np.testing.assert_allclose([h.distance for h in res.hits], [d for _, d in ref], atol=1e-5)
    assert [h.rank for h in res.hits] == [1, 2, 3, 4, 5] and res.excluded["same_image"] == 1
    assert all(np.isclose(h.similarity, 1 - h.distance**2 / 2) for h in res.hits)
    frame = res.to_frame()
    assert list(frame["rank"]) == [1, 2, 3, 4, 5] and "distance" in frame

    same = search(query, index, k=3, exclude_same_image=False)
    assert same.hits[0].source == own and same.hits[0].distance < 1e-3

    copy = tmp_path / "copy_of_7.png"  # same bytes, other name: still the same image
    shutil.copy(query, copy)
    assert own not in [h.source for h in search(copy, index, k=29).hits]


def test_k_larger_than_index(index: FaceIndex, tmp_path: Path) -> None:
    res = search(tmp_path / "imgs" / "img_0000.png", index, k=100)
    assert len(res.hits) == 29 and len({h.face_id for h in res.hits}) == 29
    assert all(a.distance <= b.distance for a, b in zip(res.hits, res.hits[1:], strict=False))


def test_quality_filters(index: FaceIndex, tmp_path: Path) -> None:
    sharp = sorted(r.sharpness for r in index.records())
    cut = sharp[15]
    res = search(tmp_path / "imgs" / "img_0003.png", index, k=10, min_sharpness=cut)
    own = str((tmp_path / "imgs" / "img_0003.png").resolve())
    ref = brute_force(index, res.query_embedding, lambda r: r.sharpness >= cut and r.source != own)
    assert [h.face_id for h in res.hits] == [i for i, _ in ref[:10]]
    assert all(h.sharpness >= cut for h in res.hits) and res.excluded["quality"] > 0
    ids = [r.id for r in index.records()]
    with index._transaction() as c:  # mark two faces as failing the quality check
        c.execute("UPDATE faces SET quality_ok = 0 WHERE id IN (?, ?)", (ids[0], ids[1]))
    res = search(tmp_path / "imgs" / "img_0003.png", index, k=40, quality_ok_only=True)
    assert {ids[0], ids[1]}.isdisjoint(h.face_id for h in res.hits) and len(res.hits) == 27


def test_errors(index: FaceIndex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModelMismatchError):
        search(tmp_path / "imgs" / "img_0000.png", index, embedder=StubEmbedder("other@1"))
    black = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(ImageError, match="no face"):
        search(black, index)
    with pytest.raises(ImageError, match="no such file"):
        search(tmp_path / "missing.png", index)
    import exprsim.faces.landmarks as lm

    monkeypatch.setattr(lm, "dlib_probe", lambda: "missing dlib: pip install 'exprsim[dlib]'")
    with pytest.raises(BackendUnavailableError, match="exprsim\\[dlib\\]"):
        search(tmp_path / "imgs" / "img_0000.png", index, exclude_same_identity=True)


def test_search_page_is_self_contained(index: FaceIndex, tmp_path: Path) -> None:
    res = search(tmp_path / "imgs" / "img_0001.png", index, k=4)
    html = search_page(res, index).render()
    assert html.count("data:image/") == 5 and "http" not in html


@pytest.mark.slow
def test_exclude_same_identity_with_dlib(tmp_path: Path, random_embedder) -> None:
    from exprsim.faces.landmarks import dlib_probe
    from exprsim.samples import sample_path

    why = dlib_probe()
    if why is not None:
        pytest.skip(why)
    names = ["grace_hopper.jpg", "astronaut_eileen_collins.jpg", "pexels_langer_frame000.jpg",
             "pexels_langer_frame144.jpg", "pexels_langer_frame432.jpg"]  # fmt: skip
    with FaceIndex(tmp_path / "faces.db", embedder=random_embedder) as index:
        index.add([sample_path(n) for n in names])
        query = sample_path("pexels_langer_frame000.jpg")
        res = search(query, index, k=10, exclude_same_identity=True)
        got = sorted(Path(h.source).name for h in res.hits)
        assert got == ["astronaut_eileen_collins.jpg", "grace_hopper.jpg"]
        assert res.excluded["same_identity"] == 2 and res.excluded["same_image"] == 1
        assert all(h.identity_distance is not None and h.identity_distance >= 0.6 for h in res.hits)
        cached = index.identity_descriptors([r.id for r in index.records()])
        assert len(cached) == 4 and all(
            v is not None and v.shape == (128,) for v in cached.values()
        )
        again = search(query, index, k=10, exclude_same_identity=True)  # served from the cache
        assert [h.face_id for h in again.hits] == [h.face_id for h in res.hits]
