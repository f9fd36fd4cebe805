"""Twelfth robustness round, web app: the album summary and its map (t-SNE of every face)
were computed again on every visit (321 s at 20,000 faces). They are kept while the index
is unchanged, and computed again after any write."""

from __future__ import annotations

import threading

import pytest

from exprsim.web.memo import GenerationMemo


def test_summary_and_map_are_computed_once_per_index_state(make_client, photo, monkeypatch):
    import importlib

    summarize_mod = importlib.import_module("exprsim.apps.summarize")
    plots = importlib.import_module("exprsim.report.plots")

    maps, sums = [], []
    real_map, real_sum = plots.embedding_map, summarize_mod.summarize
    monkeypatch.setattr(plots, "embedding_map", lambda *a, **k: maps.append(1) or real_map(*a, **k))
    monkeypatch.setattr(
        summarize_mod, "summarize", lambda *a, **k: sums.append(1) or real_sum(*a, **k)
    )
    c = make_client()
    for name in ("grace_hopper.jpg", "astronaut_eileen_collins.jpg"):
        assert c.post("/api/index", files={"file": photo(name)}).status_code == 200
    first = c.get("/api/summary?n=2").json()
    for _ in range(3):
        assert c.get("/api/summary?n=2").json() == first
        r = c.get("/api/summary/map.png?n=2")
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert len(maps) == 1 and len(sums) == 1  # one clustering for the summary and its map
    # another n is another answer; a write to the index makes every answer stale
    c.get("/api/summary?n=1")
    assert len(sums) == 2
    assert (
        c.post("/api/index", files={"file": photo("pexels_langer_frame144.jpg")}).status_code == 200
    )
    again = c.get("/api/summary?n=2").json()
    assert again["faces"] == 3 and len(sums) == 3
    c.get("/api/summary/map.png?n=2")
    assert len(maps) == 2 and len(sums) == 3


def test_the_map_of_fewer_than_two_faces_is_still_a_404(make_client, photo):
    c = make_client()
    assert c.get("/api/summary/map.png").status_code == 404
    assert c.post("/api/index", files={"file": photo()}).status_code == 200
    assert c.get("/api/summary/map.png").status_code == 404


def test_memo_keeps_the_most_recent_answers_and_computes_each_once():
    memo = GenerationMemo(size=2)
    calls: list[str] = []
    for key in ["a", "b", "a", "c", "b", "a"]:
        assert memo.get(key, lambda k=key: calls.append(k) or k.upper()) == key.upper()
    # a, b kept; a hit; c evicts b; b evicts a; a computed again
    assert calls == ["a", "b", "c", "b", "a"] and memo.computed == 5


def test_memo_keeps_nothing_when_the_computation_fails():
    memo = GenerationMemo()
    with pytest.raises(ValueError):
        memo.get("k", lambda: (_ for _ in ()).throw(ValueError("boom")))
    assert memo.get("k", lambda: 7) == 7 and memo.computed == 1


def test_memo_computes_a_shared_answer_once_for_requests_at_once():
    memo = GenerationMemo()
    started, release = threading.Event(), threading.Event()
    calls = []

    def slow() -> int:
        calls.append(1)
        started.set()
        release.wait(5)
        return 42

    out: list[int] = []
    threads = [threading.Thread(target=lambda: out.append(memo.get("k", slow))) for _ in range(4)]
    threads[0].start()
    started.wait(5)
    for t in threads[1:]:
        t.start()
    release.set()
    for t in threads:
        t.join(5)
    assert out == [42] * 4 and len(calls) == 1


# ----------------------------------------------------------------------------- review


def test_another_database_in_place_is_computed_afresh(
    make_client, photo, monkeypatch, tmp_path, random_model_dir
):
    """Review finding: the key named the generation and the face count but not the
    database, so another index copied over this one (same counts) got the first one's
    clusters."""
    import importlib
    import os

    from exprsim.index.store import FaceIndex
    from exprsim.models.embedder import load_model
    from exprsim.samples import sample_path

    summarize_mod = importlib.import_module("exprsim.apps.summarize")
    sums = []
    real_sum = summarize_mod.summarize
    monkeypatch.setattr(
        summarize_mod, "summarize", lambda *a, **k: sums.append(1) or real_sum(*a, **k)
    )
    c = make_client()
    for name in ("grace_hopper.jpg", "astronaut_eileen_collins.jpg"):
        assert c.post("/api/index", files={"file": photo(name)}).status_code == 200
    c.get("/api/summary?n=2")
    other = tmp_path / "other.db"
    with FaceIndex(other, embedder=load_model(str(random_model_dir))) as ix:
        for name in ("pexels_langer_frame144.jpg", "pexels_langer_frame360.jpg"):
            ix.add([sample_path(name)])
        gen, n = ix.generation, len(ix)
    with FaceIndex(tmp_path / "faces.db", create=False) as ix:
        assert (ix.generation, len(ix)) == (gen, n)  # what the old key held: the same
    os.replace(other, tmp_path / "faces.db")
    again = c.get("/api/summary?n=2").json()
    assert len(sums) == 2 and again["faces"] == 2


def test_a_kept_answer_does_not_wait_for_another_being_computed():
    """Review finding: one lock covered every key while computing, so a kept summary
    waited for an unrelated map (6 s instead of 0.01 s)."""
    memo = GenerationMemo()
    memo.get("kept", lambda: "old")
    started, release = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        release.wait(10)
        return "slow"

    t = threading.Thread(target=lambda: memo.get("slow", slow))
    t.start()
    assert started.wait(5)
    got = []
    reader = threading.Thread(target=lambda: got.append((memo.get("kept", lambda: "new"),
                                                         memo.get("other", lambda: "other"))))  # fmt: skip
    reader.start()
    reader.join(2)
    finished = not reader.is_alive()
    release.set()
    t.join(5)
    reader.join(5)
    assert finished and got == [("old", "other")]
    assert memo.get("slow", lambda: "again") == "slow"
