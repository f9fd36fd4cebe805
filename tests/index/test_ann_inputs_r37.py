"""Round 37 (an audit of array layouts and types): ``build_index`` checked nothing of its
vectors: ``(N, 0)`` vectors killed the process in faiss's k-means (SIGFPE; ``"auto"``
takes IVF from 20,000 vectors), a NaN row was a hit at distance NaN (exact) or left out
unsaid (HNSW), and 1-D vectors or too few ids were NumPy's or faiss's own errors. Each
backend now refuses them in one line; good vectors are searched as before."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from exprsim.errors import ExprsimError
from exprsim.index.ann import build_index

BACKENDS = ["exact", "faiss-hnsw", "faiss-ivf"]


def test_vectors_of_no_column_are_refused_not_a_crash() -> None:
    code = (
        "import numpy as np\n"
        "from exprsim.index.ann import build_index\n"
        "try:\n"
        "    build_index(np.zeros((50, 0), np.float32), backend='faiss-ivf')\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr  # was -8 (SIGFPE)
    assert "ExprsimError vectors must be (N, D) with D >= 1, got (50, 0)" in done.stdout


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_vectors_and_ids_are_one_clear_error(backend: str) -> None:
    x = np.random.default_rng(0).normal(size=(50, 16)).astype(np.float32)
    nan = x.copy()
    nan[7, 3] = np.nan
    with pytest.raises(ExprsimError, match=r"NaN or infinite values \(row 7\)"):
        build_index(nan, backend=backend)
    with pytest.raises(ExprsimError, match=r"must be \(N, D\) with D >= 1, got \(16,\)"):
        build_index(x[0], backend=backend)
    with pytest.raises(ExprsimError, match=r"ids must be \(50,\), one per vector, got \(10,\)"):
        build_index(x, np.arange(10), backend=backend)
    with pytest.raises(ExprsimError, match="not numbers"):
        build_index(np.array([["a"] * 16] * 3, dtype=object), backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_good_vectors_are_searched_as_a_naive_loop_finds_them(backend: str) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 16))  # float64, Fortran order, ids of their own
    ids = np.arange(100, 160)
    index = build_index(np.asfortranarray(x), ids, backend=backend)
    q = rng.normal(size=(3, 16)).astype(np.float32)
    dist, got = index.search(q, 5)
    for row in range(3):
        naive = sorted(
            (float(np.linalg.norm(q[row] - x[i].astype(np.float32))), 100 + i) for i in range(60)
        )
        assert list(got[row]) == [i for _, i in naive[:5]]
        assert np.allclose(dist[row], [d for d, _ in naive[:5]], atol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_vectors_added_later_are_checked_as_those_built_on(backend: str) -> None:
    """A review of this round: ``add`` of an index took a NaN row (a hit at distance NaN,
    or left out unsaid) and fewer ids than rows (the next search an IndexError)."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 16)).astype(np.float32)
    index = build_index(x, backend=backend)
    nan = rng.normal(size=(2, 16)).astype(np.float32)
    nan[1, 0] = np.nan
    with pytest.raises(ExprsimError, match=r"NaN or infinite values \(row 1\)"):
        index.add(nan, np.array([98, 99]))
    with pytest.raises(ExprsimError, match=r"ids must be \(3,\), one per vector, got \(2,\)"):
        index.add(x[:3], np.array([98, 99]))
    with pytest.raises(ExprsimError, match="vectors of 15 values, the index's of 16"):
        index.add(x[:3, :15], np.array([97, 98, 99]))
    assert len(index) == 40
    index.add(x[0] + 0.5, np.array([99]))  # one (16,) vector: a row, as before
    dist, got = index.search(x[:1] + 0.5, 1)
    assert got[0, 0] == 99 and dist[0, 0] < 1e-5
