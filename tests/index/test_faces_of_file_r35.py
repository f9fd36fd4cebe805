"""``FaceIndex.faces_of_file`` (a search's query image: its own faces, and those of its
copies) on both engines, against the stored records filtered by naive Python."""

from __future__ import annotations

import numpy as np
import pandas as pd

from exprsim.index import FaceIndex


def _table() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(7, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    df = pd.DataFrame(x.astype(np.float32), columns=[f"e{i}" for i in range(16)])
    # a.jpg has two faces; c.jpg is a copy of a.jpg (same content) with one face
    df.insert(0, "source", ["/p/a.jpg", "/p/a.jpg", "/p/b.jpg", "/p/c.jpg", "/p/d.jpg",
                            "/p/e.jpg", "/p/f.jpg"])  # fmt: skip
    df.insert(1, "face", [0, 1, 0, 0, 0, 0, 0])
    df["sha256"] = ["a" * 64, "a" * 64, "b" * 64, "a" * 64, "d" * 64, "e" * 64, None]
    return df


def test_faces_of_file_by_path_and_by_content(store) -> None:
    with FaceIndex(store) as index:
        index.add_table(_table(), model="stub@1")
        recs = index.records()

        def naive(path, sha):
            return [r.id for r in recs if (path and r.source == path) or (sha and r.sha256 == sha)]

        for path, sha in [
            ("/p/a.jpg", None),
            (None, "a" * 64),
            ("/p/b.jpg", "a" * 64),
            ("/p/f.jpg", None),
            ("/nowhere.jpg", "0" * 64),
            (None, None),
        ]:
            got = [r.id for r in index.faces_of_file(path, sha)]
            assert got == naive(path, sha)
        assert len(index.faces_of_file(sha256="a" * 64)) == 3  # the two of a.jpg, c.jpg
        assert index.faces_of_file() == []
