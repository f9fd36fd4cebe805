"""Review of audit 21: a mesh cache with a flipped byte (``zlib.error``) crashed instead of
being recomputed, and the mesh workers outlived Ctrl-C (the parent waited for their
running and queued chunks) or their parent's death. Each test failed before its fix."""

from __future__ import annotations

import logging
import multiprocessing as mp
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from exprsim import workers as workers_mod
from exprsim.pvae import features

DIGEST = "d" * 64


def test_a_cache_with_a_flipped_byte_is_recomputed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "mesh-PublicTest.npz"
    rows = np.arange(8)
    mesh = np.random.default_rng(0).normal(size=(8, 478, 3)).astype(np.float32)
    np.savez_compressed(
        path, mesh=mesh, ok=np.ones(8, bool), rows=rows, seconds=np.asarray(1.0),
        digest=np.asarray(DIGEST),
    )  # fmt: skip
    good = path.read_bytes()
    with caplog.at_level(logging.WARNING, logger="exprsim.pvae.features"):
        for offset in range(0, len(good), 211):
            damaged = bytearray(good)
            damaged[offset] ^= 0xFF
            path.write_bytes(bytes(damaged))
            got = features._cached_mesh(path, DIGEST, rows, "PublicTest")  # never raises
            assert got is None or np.array_equal(got.mesh, mesh)
    assert "Error -3 while decompressing" in caplog.text  # zlib's, named in the warning


class _Sleeps:
    """Unpickled in a worker, it sleeps there: a chunk that takes long."""

    def __reduce__(self) -> tuple[object, tuple[float]]:
        return (time.sleep, (20.0,))


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs /proc")
def test_ctrl_c_stops_the_mesh_workers_at_once() -> None:
    """Workers ignore Ctrl-C; the parent waited for their chunks (here 20 s) before it
    returned, and a further Ctrl-C left them running."""
    chunks = [(i, _Sleeps(), 192) for i in range(3)]
    before = set(mp.active_children())
    workers: list[mp.process.BaseProcess] = []
    sent: list[float] = []

    def interrupt() -> None:
        workers.extend(set(mp.active_children()) - before)
        sent.append(time.monotonic())
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    timer = threading.Timer(2.0, interrupt)
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        for _ in features._mesh_in_processes(chunks, 2, False):  # type: ignore[arg-type]
            pass
    assert sent and time.monotonic() - sent[0] < 5.0
    deadline = time.monotonic() + 5.0
    while not all(_gone(p.pid or 0) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(workers) == 2 and all(_gone(p.pid or 0) for p in workers)


def test_mesh_workers_watch_their_parent(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bool] = []
    monkeypatch.setattr(workers_mod, "exit_with_parent", lambda: calls.append(True))
    monkeypatch.setattr(mp, "parent_process", lambda: object())
    before = signal.getsignal(signal.SIGINT)
    try:
        features._init_mesh_worker()
    finally:
        signal.signal(signal.SIGINT, before)
    assert calls == [True]
