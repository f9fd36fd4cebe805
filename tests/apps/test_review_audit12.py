"""A review of the twelfth round's code: what its first fixes got wrong.

Tag distances of many references held a (rows, refs, 16) array (20,000 faces x 1,600
references: 1.9 GB); a search's "left out" counts named the query's own face twice when it
also failed a quality filter. (The web memo's findings are in tests/web/test_web_audit12.py.)
Guards that pass on the round's first fixes: the exact ties, and the counts adding up.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from stub_embedder import StubEmbedder, write_images

from exprsim.apps.tag import _exact_distances, match_tags
from exprsim.io import load_image


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.normal(size=(n, 16))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_tag_distances_of_many_references_take_n_by_r_memory() -> None:
    rng = np.random.default_rng(0)
    x, r = _unit(rng, 2000), _unit(rng, 400)
    tracemalloc.start()
    d = _exact_distances(x, r)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    nr = 2000 * 400 * 8
    assert peak < 4 * nr  # the (rows, refs, 16) differences were 16 x N x R
    exact = np.sqrt(((x[:, None, :] - r[None, :, :]) ** 2).sum(axis=2))
    np.testing.assert_allclose(d, exact, rtol=0, atol=1e-12)


def test_tag_distances_tie_exactly_and_a_copy_is_at_zero() -> None:
    rng = np.random.default_rng(1)
    r = _unit(rng, 5)
    refs = np.vstack([r, r[2:3], r[2:3]])  # three copies of one reference
    faces = np.vstack([_unit(rng, 300), r[2:3] * (1 + 1e-17), r[4:5]])
    d = _exact_distances(faces, refs)
    assert (d[:, 2] == d[:, 5]).all() and (d[:, 2] == d[:, 6]).all()
    assert d[-2, 2] == 0.0 and d[-1, 4] == 0.0
    out = match_tags(faces, refs, ["a", "b", "c", "d", "e", "c2", "c1"], threshold=2.0)
    for tags, _ in out:  # ties break by name: c before c1 before c2
        assert tags.index("c") < tags.index("c1") < tags.index("c2")


def test_left_out_counts_each_face_once(tmp_path: Path, stub: StubEmbedder) -> None:
    """The query's own face fails the sharpness filter too: one face, counted once (as
    the query's own image), not again among the quality rejects."""
    from exprsim.apps.search import search
    from exprsim.index.store import FaceIndex

    imgs = write_images(tmp_path / "imgs", 6)
    sharp = {p: float(load_image(p).std()) for p in imgs}  # the stub's sharpness
    order = sorted(imgs, key=sharp.get)
    query = order[0]
    limit = (sharp[order[0]] + sharp[order[1]]) / 2  # only the query fails it
    with FaceIndex(tmp_path / "f.db", embedder=stub) as index:
        index.add(imgs)
        res = search(query, index, k=10, min_sharpness=limit, embedder=stub)
        assert len(res.hits) == 5
        assert res.excluded["same_image"] == 1 and res.excluded["quality"] == 0
        # a stricter filter: the query and one more face fail it; the one more is a reject
        limit2 = (sharp[order[1]] + sharp[order[2]]) / 2
        res = search(query, index, k=10, min_sharpness=limit2, embedder=stub)
        assert len(res.hits) == 4
        assert (res.excluded["same_image"], res.excluded["quality"]) == (1, 1)


@pytest.mark.parametrize("k", [1, 10])
def test_left_out_counts_add_up_to_the_index(tmp_path: Path, stub: StubEmbedder, k: int) -> None:
    from exprsim.apps.search import search
    from exprsim.index.store import FaceIndex

    imgs = write_images(tmp_path / "imgs", 8)
    sharp = sorted(float(load_image(p).std()) for p in imgs)
    with FaceIndex(tmp_path / "f.db", embedder=stub) as index:
        index.add(imgs)
        for limit in (sharp[0] - 1, (sharp[2] + sharp[3]) / 2, sharp[-1] + 1):
            res = search(imgs[0], index, k=k, min_sharpness=limit, embedder=stub)
            counted = len(res.hits) + sum(res.excluded.values())
            if len(res.hits) < k:  # every face was examined or filtered
                assert counted == len(imgs), (limit, res.excluded)
            else:
                assert counted <= len(imgs), (limit, res.excluded)
