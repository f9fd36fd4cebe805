"""Round 33: a child made with ``fork`` while another thread held a shared object's lock
(the shared detector, a ``FaceIndex``'s connection or ANN cache) hung for ever at its first
call; it now gets a free lock, and a new detector / connection / cache where the old one
was mid-use."""

from __future__ import annotations

import os
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np
import pytest
from stub_embedder import StubEmbedder, write_images

from exprsim.faces.pipeline import _SharedDetector
from exprsim.forking import fresh_lock, held_elsewhere
from exprsim.index.store import FaceIndex

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() here")


def _fork_while_held(
    hold: Callable[[], AbstractContextManager[object]], child: Callable[[], bool]
) -> int:
    """Fork while another thread is inside ``hold()``; the child runs ``child()`` with 10
    s to answer: its exit status (0: true, 1: false, 2: raised, SIGALRM: hung)."""
    inside, done = threading.Event(), threading.Event()

    def holder() -> None:
        with hold():
            inside.set()
            done.wait(30)

    t = threading.Thread(target=holder)
    t.start()
    assert inside.wait(10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        signal.alarm(10)
        try:
            code = 0 if child() else 1
        except BaseException:
            code = 2
        os._exit(code)
    done.set()
    t.join()
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


class _Fake:
    name = "fake"

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def detect(self, image: np.ndarray) -> list[str]:
        return [self.tag]

    def detect_near(self, image: np.ndarray, boxes: object) -> list[str]:
        return [self.tag + "-near"]


def test_a_shared_detector_held_at_fork_is_free_and_new_in_the_child() -> None:
    det = _SharedDetector(_Fake("parent"), build=lambda: _Fake("child"))  # type: ignore[arg-type]
    img = np.zeros((4, 4, 3), np.uint8)
    status = _fork_while_held(
        lambda: det._lock,
        lambda: det.detect(img) == ["child"] and det.detect_near(img, []) == ["child-near"],
    )
    assert status == 0  # was -SIGALRM: the child waited for the parent thread's lock
    assert det.detect(img) == ["parent"]  # the parent's is untouched


def test_a_shared_detector_idle_at_fork_is_kept_in_the_child() -> None:
    det = _SharedDetector(_Fake("parent"), build=lambda: _Fake("child"))  # type: ignore[arg-type]
    img = np.zeros((4, 4, 3), np.uint8)
    status = _fork_while_held(lambda: threading.Lock(), lambda: det.detect(img) == ["parent"])
    assert status == 0  # no rebuild (about a second for MediaPipe) when nothing was mid-use


@pytest.fixture
def index(tmp_path: Path) -> Iterator[FaceIndex]:
    with FaceIndex(tmp_path / "f.db", embedder=StubEmbedder()) as ix:
        ix.add(write_images(tmp_path / "imgs", 3))
        yield ix


def test_an_index_whose_connection_was_held_at_fork_answers_in_the_child(index: FaceIndex) -> None:
    _, emb = index.embeddings()
    status = _fork_while_held(
        lambda: index._db._held(),  # a statement of a parent thread under way
        lambda: len(index) == 3 and index.query(emb[:1], 2)[1].shape == (1, 2),
    )
    assert status == 0
    assert len(index) == 3


def test_an_index_whose_ann_cache_was_held_at_fork_answers_in_the_child(index: FaceIndex) -> None:
    _, emb = index.embeddings()
    index.query(emb[:1], 1)
    status = _fork_while_held(
        lambda: index._ann_lock, lambda: index.query(emb[:1], 3)[1].shape == (1, 3)
    )
    assert status == 0


def test_fresh_lock_replaces_only_a_lock_held_by_another_thread() -> None:
    for make in (threading.Lock, threading.RLock):
        lock = make()
        assert fresh_lock(lock) is lock and not held_elsewhere(lock)
        got = threading.Event()
        release = threading.Event()

        def hold(lock=lock, got=got, release=release) -> None:
            with lock:
                got.set()
                release.wait(10)

        t = threading.Thread(target=hold)
        t.start()
        got.wait(10)
        new = fresh_lock(lock)
        assert new is not lock and type(new) is type(lock) and held_elsewhere(lock)
        release.set()
        t.join()
    rlock = threading.RLock()
    with rlock:  # this thread's own: not "elsewhere"
        assert fresh_lock(rlock) is rlock


def test_a_postgresql_index_held_at_fork_answers_in_the_child(pg_url: str, tmp_path: Path) -> None:
    """Review of round 33: the PostgreSQL engine was not covered (its locks stayed held in
    the child, which hung); the child now talks on a connection of its own, and the
    parent's session survives the child."""
    with FaceIndex(pg_url, embedder=StubEmbedder()) as ix:
        ix.add(write_images(tmp_path / "imgs", 2))
        status = _fork_while_held(lambda: ix._db._guard(), lambda: len(ix) == 2)
        assert status == 0
        idle = _fork_while_held(lambda: threading.Lock(), lambda: len(ix) == 2)
        assert idle == 0  # an idle connection is not shared with the child either
        assert len(ix) == 2  # the parent's connection still works


def test_a_child_forked_mid_use_reads_and_refuses_writes_in_one_line(
    index: FaceIndex, tmp_path: Path
) -> None:
    """Review of round 33: a write of such a child waited 30 s, then failed as "database is
    locked" (SQLite's record of the parent's locks came with the fork)."""
    from exprsim.errors import IndexDatabaseError

    def child() -> bool:
        assert len(index) == 3  # reads work
        t0 = time.monotonic()
        try:
            index.add_tags(index.embeddings()[0][:1], ["x"])
        except IndexDatabaseError as exc:
            return "forked while another thread used the index" in str(exc) and (
                time.monotonic() - t0 < 5
            )
        return False

    assert _fork_while_held(lambda: index._db._held(), child) == 0
    index.add_tags(index.embeddings()[0][:1], ["x"])  # the parent still writes


def test_a_lock_the_forking_thread_holds_itself_is_kept() -> None:
    """Review: a plain lock held by the forking thread looked held "elsewhere", and the
    child threw away the detector that thread was using."""
    det = _SharedDetector(_Fake("parent"), build=lambda: _Fake("child"))  # type: ignore[arg-type]
    img = np.zeros((4, 4, 3), np.uint8)
    with det._lock:  # this thread, inside a detection, forks
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            signal.alarm(10)
            os._exit(0 if det.detect(img) == ["parent"] else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
