"""PostgreSQL: ``remove`` takes the index's generation before it deletes, as a reembed does.

A reembed bumps the generation (a row lock on ``meta``), then updates every face. A remove
that deleted a face (its row locked) before it bumped the generation waited for the
reembed's ``meta`` lock while the reembed waited for its face: PostgreSQL broke the
deadlock by failing one of them. Needs a server (``conftest.py``), skipped without one.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd
import pytest

from exprsim.index.store import FaceIndex

psycopg = pytest.importorskip("psycopg", reason="psycopg not installed")


def _table(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    cols = {f"e{i}": x[:, i] for i in range(16)}
    return pd.DataFrame({"source": [f"/photos/p{i}.jpg" for i in range(n)], **cols})


def test_remove_waits_for_a_reembed_instead_of_deadlocking(pg_url: str) -> None:
    with FaceIndex(pg_url) as ix:
        ix.add_table(_table(3).assign(model="stub@1"))
    outcome: dict[str, object] = {}

    def remove() -> None:
        try:
            with FaceIndex(pg_url) as other:
                outcome["removed"] = other.remove("/photos/p1.jpg")
        except Exception as exc:  # the test reports it
            outcome["error"] = exc

    # what a reembed's writing transaction does, in its order: the generation, then faces
    with psycopg.connect(pg_url) as conn:
        conn.execute(
            "UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)"
            " WHERE key = 'generation'"
        )
        worker = threading.Thread(target=remove)
        worker.start()
        time.sleep(1.5)  # the remove is now waiting on a lock
        assert worker.is_alive()
        conn.execute("SET LOCAL lock_timeout = '20s'")
        # was: deadlock detected (here or in the remove)
        conn.execute("UPDATE faces SET model = 'new@2'")
        conn.execute("UPDATE meta SET value = 'new@2' WHERE key = 'model'")
        conn.commit()
    worker.join(30)
    assert "error" not in outcome, outcome
    assert outcome["removed"] == 1
    with FaceIndex(pg_url) as ix:
        assert len(ix) == 2
        assert ix.generation == 3  # add, the "reembed", the remove


def test_remove_of_nothing_leaves_the_generation(pg_url: str) -> None:
    with FaceIndex(pg_url) as ix:
        ix.add_table(_table(2).assign(model="stub@1"))
        before = ix.generation
        missed: list[object] = []
        assert ix.remove(["/photos/none.jpg", "/photos/p0.jpg"], missed=missed) == 1
        assert missed == ["/photos/none.jpg"]
        assert ix.generation == before + 1
        assert ix.remove("/photos/none.jpg") == 0
        assert ix.generation == before + 1
