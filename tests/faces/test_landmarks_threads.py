"""Seventeenth round (the public API from several threads): `face_mesh`'s shared default
landmarker (a MediaPipe graph, not thread-safe) is used by one thread at a time."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from exprsim.faces import landmarks


class _Graph:
    """Stands in for MeshLandmarker: notes whether two threads were ever inside at once."""

    inside = 0
    overlapped = False
    lock = threading.Lock()

    def mesh(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        with self.lock:
            type(self).inside += 1
            type(self).overlapped |= self.inside > 1
        time.sleep(0.01)
        with self.lock:
            type(self).inside -= 1
        return np.full((478, 3), float(image[0, 0, 0]), np.float32)


def test_the_shared_mesh_runs_one_thread_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Audit: 4 threads on the shared graph got "Packet timestamp mismatch", one another's
    meshes (9 of 72 calls), a graph broken for good, or a segfault."""
    monkeypatch.setattr(landmarks, "_DEFAULT_MESH", None)
    monkeypatch.setattr(landmarks, "MeshLandmarker", _Graph)
    answers: dict[int, float] = {}

    def run(k: int) -> None:
        for _ in range(5):
            image = np.full((32, 32, 3), k, np.uint8)
            answers[k] = float(landmarks.face_mesh(image, (0, 0, 32, 32))[0, 0])

    threads = [threading.Thread(target=run, args=(k,)) for k in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not _Graph.overlapped
    assert answers == {k: float(k) for k in range(1, 5)}
