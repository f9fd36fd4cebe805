"""``FaceIndex.get`` asked one query per face id (a network round trip each on PostgreSQL:
a search examines 3k + 10 candidates). It now asks one per 500 distinct ids, with the same
records in the same order, on both engines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from stub_embedder import StubEmbedder, write_images

from exprsim.index.store import FaceIndex


def test_get_gives_the_records_asked_in_order_with_few_queries(store, tmp_path: Path) -> None:
    imgs = write_images(tmp_path / "imgs", 12)
    with FaceIndex(store, embedder=StubEmbedder()) as index:
        index.add(imgs)
        by_id = {r.id: r for r in index.records()}
        rng = np.random.default_rng(0)
        known = list(by_id)
        asked = [int(v) for v in rng.choice(known, 40)] + [10**6, -3, known[0], 2**70]
        rng.shuffle(asked)
        naive = [by_id[i] for i in asked if i in by_id]  # the per-id loop's answer
        calls = []
        real = index._db.execute

        def counting(sql, params=()):
            calls.append(sql)
            return real(sql, params)

        index._db.execute = counting
        try:
            got = index.get(asked)
            many = index.get(asked * 30, chunk=500)  # 1,320 ids, 12 distinct
            small_chunks = index.get(known, chunk=5)
        finally:
            del index._db.execute
    assert [r.id for r in got] == [r.id for r in naive]
    assert [r.source for r in got] == [r.source for r in naive]
    for a, b in zip(got, naive, strict=True):
        np.testing.assert_array_equal(a.embedding, b.embedding)
    assert [r.id for r in many] == [r.id for r in naive] * 30
    assert [r.id for r in small_chunks] == known
    selects = [c for c in calls if "FROM faces" in c]
    assert len(selects) == 1 + 1 + 3, selects  # 12 distinct ids in chunks of 5: 3


def test_get_of_nothing_asks_nothing(tmp_path: Path) -> None:
    with FaceIndex(tmp_path / "f.db", embedder=StubEmbedder()) as index:
        assert index.get([]) == [] and index.get([5, 7]) == []
