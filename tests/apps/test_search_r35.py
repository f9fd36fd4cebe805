"""Round 35: a search's "left out" counts do not depend on which walk answered.

The query's own face failing a quality filter was counted as "of the query's own image"
when the exact index was walked (most faces pass) and as "failing the quality filters"
when the passing faces were read instead (few pass): the footer said one or the other.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from stub_embedder import StubEmbedder, write_images

from exprsim.index.store import FaceIndex
from exprsim.io import load_image

# the module (``exprsim.apps.search`` the attribute is the function)
search_mod = importlib.import_module("exprsim.apps.search")


@pytest.mark.parametrize("share", [1, 10**9])  # 1: the passing walk; 10**9: the index walk
def test_own_failing_face_is_the_querys_whichever_walk(
    tmp_path: Path, stub: StubEmbedder, monkeypatch: pytest.MonkeyPatch, share: int
) -> None:
    imgs = write_images(tmp_path / "imgs", 6)
    sharp = {p: float(load_image(p).std()) for p in imgs}  # the stub's sharpness
    order = sorted(imgs, key=sharp.get)
    query = order[0]
    limit = (sharp[order[-2]] + sharp[order[-1]]) / 2  # only the sharpest face passes
    monkeypatch.setattr(search_mod, "EXACT_WALK_SHARE", share)
    with FaceIndex(tmp_path / "f.db", embedder=stub) as index:
        index.add(imgs)
        res = search_mod.search(query, index, k=10, min_sharpness=limit, embedder=stub)
    assert [h.source for h in res.hits] == [str(Path(order[-1]).resolve())]
    # six faces: one hit, the query's own, four others failing the filter
    assert res.excluded == {"same_image": 1, "same_identity": 0, "quality": 4}


def test_search_page_shows_distances_as_the_terminal(tmp_path: Path) -> None:
    """The query's own face, embedded again, at 1.786e-07: the page's table said
    "1.786e-07" (4 significant digits) where the terminal said 0.0000."""
    import re
    import types

    import numpy as np

    hits = tuple(
        search_mod.SearchHit(
            rank=i + 1,
            face_id=i + 1,
            distance=d,
            source=f"/p/{i}.jpg",
            face_index=0,
            box=np.zeros(4, np.float32),
            quality_ok=True,
            sharpness=50.0,
            yaw=-0.0,
        )
        for i, d in enumerate([1.786e-07, 0.81234567])
    )
    res = search_mod.SearchResult("/p/q.jpg", 0, np.zeros(16, np.float32), hits, model="m@1")
    index = types.SimpleNamespace(crop=lambda face_id: None)
    html = search_mod.search_page(res, index).render()
    table = html[html.rindex("<table>") :]
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", table)
    assert "e-07" not in table
    assert cells[1:4] == ["1", "0", "1"]  # face id, distance, similarity of the first hit
    assert "0.8123" in cells  # the second hit's distance, to 4 decimals
    assert "-0" not in cells  # a yaw of -0.0: no sign on zero


def test_a_path_like_query_is_its_file(tmp_path: Path, stub: StubEmbedder) -> None:
    """An os.DirEntry (a scandir result) was read as pixels: no path, no hash, so the
    query photo itself came back first at distance 0."""
    import os

    imgs = write_images(tmp_path / "imgs", 3)
    with FaceIndex(tmp_path / "f.db", embedder=stub) as index:
        index.add(imgs)
        entry = next(e for e in os.scandir(tmp_path / "imgs") if e.path == str(imgs[0]))
        res = search_mod.search(entry, index, k=5, embedder=stub)
    assert res.query_source == str(imgs[0])
    assert str(Path(imgs[0]).resolve()) not in [h.source for h in res.hits]
    assert res.excluded["same_image"] == 1 and len(res.hits) == 2
