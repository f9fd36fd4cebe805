"""Round 33: ``FaceIndex.add(wait=...)`` bounds the wait for another writer."""

from __future__ import annotations

from pathlib import Path

import pytest
from stub_embedder import StubEmbedder, write_images

from exprsim.errors import ArgumentError, IndexBusyError, IndexDatabaseError
from exprsim.index.store import FaceIndex


def test_add_gives_up_after_wait_and_stores_nothing(store: str | Path, tmp_path: Path) -> None:
    imgs = write_images(tmp_path / "imgs", 2)
    with FaceIndex(store, embedder=StubEmbedder()) as ix, FaceIndex(store) as other:
        with other._writer_lock():  # another writer, as `exprsim index add` holds it
            with pytest.raises(IndexBusyError, match="another writer") as info:
                ix.add(imgs, wait=0.2)
            assert isinstance(info.value, IndexDatabaseError)
            assert len(ix) == 0
        assert ix.add(imgs, wait=0.2).count("added") == 2  # free again


@pytest.mark.parametrize("bad", [-1, float("nan"), "5", True])
def test_a_bad_wait_is_refused_before_any_work(tmp_path: Path, bad: object) -> None:
    with FaceIndex(tmp_path / "f.db", embedder=StubEmbedder()) as ix:
        with pytest.raises(ArgumentError, match="wait must be"):
            ix.add(write_images(tmp_path / "imgs", 1), wait=bad)  # type: ignore[arg-type]
        assert len(ix) == 0


def test_the_wait_is_one_deadline_for_a_thread_and_another_writer(tmp_path: Path, store) -> None:
    """Review: PostgreSQL waited ``wait`` for the thread lock, then ``wait`` again."""
    import threading
    import time

    imgs = write_images(tmp_path / "imgs", 1)
    with FaceIndex(store, embedder=StubEmbedder()) as ix:
        got, done = threading.Event(), threading.Event()

        def hold() -> None:
            with ix._writer_lock():
                got.set()
                done.wait(30)

        t = threading.Thread(target=hold)
        t.start()
        got.wait(10)
        t0 = time.monotonic()
        with pytest.raises(IndexBusyError):
            ix.add(imgs, wait=1.0)
        waited = time.monotonic() - t0
        done.set()
        t.join()
        assert waited < 1.8, waited
