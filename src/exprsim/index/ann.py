"""Nearest-neighbour search over embeddings: exact (numpy) and approximate (faiss).

Every backend answers the same question — the ``k`` stored vectors nearest to each query
in Euclidean distance — and persists to one file beside the SQLite store (``faces.db.ann``)
that can always be rebuilt from SQLite. Backends (registry :data:`ANN_BACKENDS`):

* ``"exact"``: brute force, candidates by ``|q|^2 + |x|^2 - 2 q.x`` in float32 chunks +
  ``argpartition``, then scored exactly (``|q - x|`` in float64: an identical vector is at
  distance 0, not the expansion's ~5e-4 floor). No dependency, exact, and under a
  millisecond per query below :data:`EXACT_MAX` vectors.
* ``"faiss-ivf"``: ``faiss.IndexIVFFlat`` (k-means coarse quantiser, nlist = 4 sqrt(N),
  nprobe = 128 up to k = 10, more for more neighbours: :func:`search_effort`): the pick
  above :data:`EXACT_MAX` (``pip install 'exprsim[ann]'``).
* ``"faiss-hnsw"``: ``faiss.IndexHNSWFlat`` (M=32, efConstruction=40, efSearch=64, at
  least 2 k); kept for comparison.

Why IVF (``benchmarks/search.py``, full table in ``docs/benchmarks.md``; 1,000,000 16-d
vectors, 1000 single queries, k=10, 2 CPU cores shared with a training run): IVF with
nprobe=128 meets both targets (p50 < 1 ms, recall@10 >= 0.98) on clustered *and* on
uniform data (the hard case: recall 0.990 at p50 0.73 ms), builds in ~45 s and stores
nothing but the vectors; HNSW reached recall@10 0.985 at p50 0.36 ms (ef=64) on the
clustered set but took 280 s to build; exact numpy search costs ~45 ms per query at 1M.
``"auto"`` uses exact search below :data:`EXACT_MAX` vectors (p50 0.56 ms at 20,000) and
IVF above, falling back to exact search when faiss is not installed.

Incremental updates: ``ExactIndex`` and the IVF index take :meth:`add` and :meth:`remove`
(IVF keeps the trained centroids and appends to their lists; HNSW takes adds only), so the
store catches its ANN cache up with a few new faces in a second or two instead of
rebuilding it (``FaceIndex.refresh_ann``). :func:`needs_retrain` is the drift rule that
says when a rebuild is due instead.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike

from exprsim.errors import BackendUnavailableError, ExprsimError, real_array, require_positive_int
from exprsim.io import save_npz, write_atomically

log = logging.getLogger(__name__)

#: Below this many vectors ``"auto"`` picks exact search.
EXACT_MAX = 20_000
#: the ``k`` at which the approximate backends' search effort (IVF ``nprobe`` 128, HNSW
#: ``efSearch`` 64) was chosen (recall@10 >= 0.98); a search for more neighbours gets more
#: (:func:`search_effort`)
EFFORT_K = 10
FAISS_INSTALL = "pip install 'exprsim[ann]'  (faiss-cpu)"


class AnnIndex(Protocol):
    """What every backend offers."""

    name: str

    def __len__(self) -> int: ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(Q, D)`` queries -> ``(Q, k)`` Euclidean distances (ascending) and ``(Q, k)`` int64
        ids; rows are padded with ``inf`` / ``-1`` when fewer than ``k`` vectors are stored."""
        ...

    def save(self, path: str | Path, extra: Mapping[str, np.ndarray] | None = None) -> None:
        """Write the index to one file (``extra``: more arrays stored in it)."""
        ...


def as_queries(queries: ArrayLike, dim: int, k: Any = 1) -> np.ndarray:
    """``(Q, dim)`` float32 queries, checked with ``k`` (a positive integer)."""
    require_positive_int(k, "k")
    try:
        q = np.ascontiguousarray(np.atleast_2d(real_array(queries, "queries", np.float32)))
    except (TypeError, ValueError) as exc:
        raise ExprsimError(f"queries must be a (Q, {dim}) array of numbers ({exc})") from exc
    if q.ndim != 2 or q.shape[1] != dim:
        raise ExprsimError(f"queries must be (Q, {dim}), got {np.shape(queries)}")
    if not np.isfinite(q).all():
        raise ExprsimError("queries hold NaN or infinite values")
    return q


def as_vectors(
    vectors: Any, ids: Any = None, dim: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(N, D)`` contiguous float32 vectors to index, ``D >= 1`` (``dim`` when given: one
    ``(dim,)`` vector is a row of it), finite, and their ``(N,)`` int64 ids (default
    ``arange(N)``).

    Raises:
        ExprsimError: not a 2-D array of numbers, no column, NaN or infinite values, or not
            one id per vector (faiss's k-means divided by zero on ``(N, 0)`` vectors and
            killed the process; a NaN row was a hit at distance NaN, or left out unsaid).
    """
    try:
        x = np.ascontiguousarray(real_array(vectors, "vectors", np.float32))
    except (TypeError, ValueError) as exc:
        raise ExprsimError(f"vectors must be an (N, D) array of numbers ({exc})") from exc
    if dim is not None and x.ndim == 1 and x.size in (0, dim):
        x = x.reshape(-1, dim)
    if dim is not None and x.ndim == 2 and x.shape[1] != dim and len(x):
        raise ExprsimError(f"vectors of {x.shape[1]} values, the index's of {dim}")
    if x.ndim != 2 or (x.shape[1] < 1 and len(x)):
        raise ExprsimError(f"vectors must be (N, D) with D >= 1, got {x.shape}")
    if not np.isfinite(x).all():
        bad = int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0])
        raise ExprsimError(f"vectors hold NaN or infinite values (row {bad})")
    n = len(x)
    try:
        out = np.arange(n, dtype=np.int64) if ids is None else np.asarray(ids, np.int64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ExprsimError(f"ids must be ({n},) integers ({exc})") from exc
    if out.shape != (n,):
        raise ExprsimError(f"ids must be ({n},), one per vector, got {out.shape}")
    return x, out


def _pad(dist: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    if dist.shape[1] == k:
        return dist, ids
    q = dist.shape[0]
    d = np.full((q, k), np.inf, dtype=np.float32)
    i = np.full((q, k), -1, dtype=np.int64)
    d[:, : dist.shape[1]] = dist
    i[:, : ids.shape[1]] = ids
    return d, i


#: extra candidates :meth:`ExactIndex.search` scores exactly beyond the ``k`` asked for
RESCORE_MARGIN = 16


def _direct_distances(
    q64: np.ndarray, vectors: np.ndarray, rows: np.ndarray | None = None, chunk: int = 65_536
) -> np.ndarray:
    """``|q - x|`` in float64, without the cancellation of the expansion: ``(Q, D)`` queries
    against ``vectors[rows]`` (``(Q, M)`` positions) -> ``(Q, M)``, or against every vector
    (``rows=None``, in chunks) -> ``(Q, N)``."""
    if rows is not None:
        diff = vectors[rows].astype(np.float64) - q64[:, None, :]
        return np.sqrt(np.einsum("qmd,qmd->qm", diff, diff))
    out = np.empty((q64.shape[0], len(vectors)), dtype=np.float64)
    for start in range(0, len(vectors), chunk):
        diff = vectors[start : start + chunk].astype(np.float64)[None] - q64[:, None, :]
        out[:, start : start + chunk] = np.sqrt(np.einsum("qmd,qmd->qm", diff, diff))
    return out


def exact_distances(query: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """``|query - x|`` in float64 for every row of ``(N, D)`` ``vectors`` -> ``(N,)`` (the
    exact index's own rescoring, for one ``(D,)`` query)."""
    q64 = np.asarray(query, dtype=np.float64).reshape(1, -1)
    return _direct_distances(q64, np.asarray(vectors))[0]


def _smallest(dist: np.ndarray, pos: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``kk`` smallest of ``dist`` (``(M,)``) with their ``pos``, ascending; ties: the
    lower position first."""
    if kk < len(dist):
        part = np.argpartition(dist, kk - 1)
        cut = dist[part[kk - 1]]
        pick = np.flatnonzero(dist <= cut)  # every tie at the cut, to break them by position
        dist, pos = dist[pick], pos[pick]
    order = np.lexsort((pos, dist))[:kk]
    return pos[order], dist[order]


class ExactIndex:
    """Brute-force Euclidean search (numpy).

    Args:
        vectors: ``(N, D)`` float32.
        ids: ``(N,)`` int64 ids returned by :meth:`search` (default ``arange(N)``).
        chunk: database rows scored per step (bounds memory to ``Q * chunk`` floats).
    """

    name = "exact"

    def __init__(self, vectors: np.ndarray, ids: np.ndarray | None = None, chunk: int = 262_144):
        self.vectors, self.ids = as_vectors(vectors, ids)
        self.norms = np.einsum("ij,ij->i", self.vectors, self.vectors)
        self.chunk = chunk

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest vectors: candidates found by the fast float32 expansion
        ``|q|^2 + |x|^2 - 2 q.x``, then scored exactly (``|q - x|`` in float64), so an
        identical vector is at distance 0 and near-duplicates keep their true order; a query
        whose cut-off the expansion's rounding error cannot settle is scanned exactly."""
        q = as_queries(queries, self.dim, k)
        k = require_positive_int(k, "k")  # a NumPy integer as a Python int
        n = len(self)
        kk = min(k, n)
        if kk == 0:
            return _pad(
                np.zeros((q.shape[0], 0), np.float32), np.zeros((q.shape[0], 0), np.int64), k
            )
        approx, cand = self._candidates(q, min(n, kk + RESCORE_MARGIN))
        q64 = q.astype(np.float64)
        dist = _direct_distances(q64, self.vectors, cand)
        pos = np.empty((q.shape[0], kk), dtype=np.int64)
        best = np.empty((q.shape[0], kk), dtype=np.float64)
        for row in range(q.shape[0]):
            if cand.shape[1] < n and not self._settled(q64[row], approx[row], dist[row], kk):
                d_all = _direct_distances(q64[row : row + 1], self.vectors)[0]
                pos[row], best[row] = _smallest(d_all, np.arange(n), kk)
            else:
                pos[row], best[row] = _smallest(dist[row], cand[row], kk)
        return _pad(best.astype(np.float32), self.ids[pos], k)

    def _candidates(self, q: np.ndarray, keep: int) -> tuple[np.ndarray, np.ndarray]:
        """``(Q, keep)`` float32 squared distances by the expansion (unordered) and the row
        positions of the ``keep`` vectors smallest by them: every row left out scores at
        least the largest of its query's ``keep``."""
        n = len(self)
        qn = np.einsum("ij,ij->i", q, q)[:, None]
        best_d = np.full((q.shape[0], 0), np.inf, dtype=np.float32)
        best_i = np.zeros((q.shape[0], 0), dtype=np.int64)
        for start in range(0, n, self.chunk):
            x = self.vectors[start : start + self.chunk]
            d2 = qn + self.norms[None, start : start + self.chunk] - 2.0 * (q @ x.T)
            kc = min(keep, d2.shape[1])
            part = np.argpartition(d2, kc - 1, axis=1)[:, :kc] if kc < d2.shape[1] else None
            if part is None:
                part = np.broadcast_to(np.arange(d2.shape[1]), d2.shape)
            cand_d = np.take_along_axis(d2, part, axis=1)
            best_d = np.concatenate([best_d, cand_d], axis=1)
            best_i = np.concatenate([best_i, part + start], axis=1)
            if best_d.shape[1] > keep:
                sel = np.argpartition(best_d, keep - 1, axis=1)[:, :keep]
                best_d = np.take_along_axis(best_d, sel, axis=1)
                best_i = np.take_along_axis(best_i, sel, axis=1)
        return best_d, best_i

    def _settled(self, q64: np.ndarray, approx: np.ndarray, dist: np.ndarray, kk: int) -> bool:
        """Whether no vector outside one query's candidates can be nearer than the ``kk``-th
        candidate by exact distance: each left out scores at least ``approx.max()`` by the
        expansion, which is off by at most ``err`` (float32 rounding of the norms, the
        ``D``-term dot product and the two sums)."""
        eps = float(np.finfo(np.float32).eps)
        reach = math.sqrt(float(q64 @ q64)) + math.sqrt(float(self.norms.max()))
        err = (self.dim + 4) * eps * reach**2
        kth = float(np.partition(dist, kk - 1)[kk - 1])
        return float(approx.max()) - err > kth * kth

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Append ``(M, D)`` vectors with their ``(M,)`` ids (checked: :func:`as_vectors`)."""
        x, ids = as_vectors(vectors, np.reshape(ids, -1), self.dim)
        self.vectors = np.ascontiguousarray(np.concatenate([self.vectors, x]))
        self.ids = np.concatenate([self.ids, ids])
        self.norms = np.concatenate([self.norms, np.einsum("ij,ij->i", x, x)])

    def remove(self, ids: np.ndarray) -> int:
        """Drop the vectors of ``ids`` (unknown ids are ignored); returns how many."""
        keep = ~np.isin(self.ids, np.asarray(ids, np.int64))
        n = int((~keep).sum())
        if n:
            self.vectors, self.ids, self.norms = (
                self.vectors[keep],
                self.ids[keep],
                self.norms[keep],
            )
        return n

    def save(self, path: str | Path, extra: Mapping[str, np.ndarray] | None = None) -> None:
        arrays: dict[str, np.ndarray] = {"vectors": self.vectors, "ids": self.ids, **(extra or {})}
        write_atomically(path, lambda f: save_npz(f, arrays))

    @classmethod
    def load(cls, path: str | Path) -> ExactIndex:
        with np.load(path, allow_pickle=False) as z:
            return cls.from_npz(z)

    @classmethod
    def from_npz(cls, z: Any) -> ExactIndex:
        """From the open ``.npz`` that :meth:`save` wrote."""
        return cls(z["vectors"], z["ids"])


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:
        raise BackendUnavailableError(f"faiss is not installed: {FAISS_INSTALL}") from exc
    return faiss


class FaissIndex:
    """A faiss index (HNSW or IVF, Euclidean) with an int64 id map.

    Args:
        index: a trained, filled ``faiss.Index``.
        ids: ``(N,)`` int64 external ids in insertion order, or ``None`` when the faiss
            index stores the external ids itself (IVF, ``add_with_ids``).
        name: backend name (``"faiss-hnsw"`` or ``"faiss-ivf"``).
    """

    def __init__(
        self,
        index: Any,
        ids: np.ndarray | None,
        name: str,
        twins: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        self.index = index
        self.ids = None if ids is None else np.asarray(ids, dtype=np.int64)
        self.name = name
        #: HNSW: the ids of vectors equal to one in the graph (only the first is in it: a
        #: few hundred copies of one vector trap HNSW's search, so that other faces are no
        #: longer found), as ``(positions in the graph, ids)`` sorted by position
        pos, tid = twins if twins is not None else (np.zeros(0, np.int64), np.zeros(0, np.int64))
        self._twin_pos, self._twin_ids = _sorted_twins(pos, tid)
        self._keys: dict[bytes, int] | None = None  # graph vector -> position, built on add

    def __len__(self) -> int:
        return int(self.index.ntotal) + len(self._twin_ids)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = as_queries(queries, self.dim, k)
        k = require_positive_int(k, "k")  # faiss takes a Python int only, not NumPy's
        if len(self) == 0:
            return _pad(
                np.zeros((q.shape[0], 0), np.float32), np.zeros((q.shape[0], 0), np.int64), k
            )
        params = search_effort(self.index, k)
        d2, idx = (
            self.index.search(q, k) if params is None else self.index.search(q, k, params=params)
        )
        ok = idx >= 0
        dist = np.where(ok, np.sqrt(np.clip(d2, 0.0, None)), np.inf).astype(np.float32)
        if len(self._twin_ids):
            return self._with_twins(dist, idx, k)
        out_ids = idx if self.ids is None else np.where(ok, self.ids[np.where(ok, idx, 0)], -1)
        return dist, out_ids.astype(np.int64)

    def _with_twins(
        self, dist: np.ndarray, idx: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest with every graph vector followed by its twins (the same
        distance): the nearest ``k`` graph vectors hold the ``k`` nearest faces."""
        assert self.ids is not None
        out_d = np.full((len(idx), k), np.inf, np.float32)
        out_i = np.full((len(idx), k), -1, np.int64)
        for r in range(len(idx)):
            got_d: list[float] = []
            got_i: list[int] = []
            for d, pos in zip(dist[r].tolist(), idx[r].tolist(), strict=True):
                if pos < 0 or len(got_i) >= k:
                    break
                lo, hi = np.searchsorted(self._twin_pos, [pos, pos + 1])
                more = [int(self.ids[pos]), *self._twin_ids[lo:hi].tolist()]
                got_i += more
                got_d += [d] * len(more)
            n = min(k, len(got_i))
            out_d[r, :n], out_i[r, :n] = got_d[:n], got_i[:n]
        return out_d, out_i

    def set_search_params(self, ef_search: int | None = None, nprobe: int | None = None) -> None:
        """Trade speed for recall: HNSW ``efSearch`` / IVF ``nprobe``."""
        if ef_search is not None and hasattr(self.index, "hnsw"):
            self.index.hnsw.efSearch = int(ef_search)
        if nprobe is not None and hasattr(self.index, "nprobe"):
            self.index.nprobe = int(nprobe)

    @property
    def trained(self) -> bool:
        """Whether vectors can be added (an IVF built over no vectors has no centroids)."""
        return bool(getattr(self.index, "is_trained", True))

    @property
    def can_remove(self) -> bool:
        """Whether :meth:`remove` works (IVF with its own ids; not HNSW)."""
        return self.ids is None

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Append ``(M, D)`` vectors with their ``(M,)`` ids (IVF: to the trained lists)."""
        x, ids = as_vectors(vectors, np.reshape(ids, -1), self.dim)
        if not len(x):
            return
        if self.ids is None:
            self.index.add_with_ids(x, ids)
            return
        if self._keys is None:  # the graph's vectors, once: later adds look them up
            held = self.index.reconstruct_n(0, self.index.ntotal) if self.index.ntotal else x[:0]
            self._keys = {}
            for i, v in enumerate(np.ascontiguousarray(held, np.float32)):
                self._keys.setdefault(v.tobytes(), i)
        new_rows: list[np.ndarray] = []
        new_ids: list[int] = []
        twin_pos: list[int] = []
        twin_ids: list[int] = []
        for v, fid in zip(x, ids.tolist(), strict=True):
            pos = self._keys.get(v.tobytes())
            if pos is None:  # a new vector: into the graph
                self._keys[v.tobytes()] = int(self.index.ntotal) + len(new_rows)
                new_rows.append(v)
                new_ids.append(fid)
            else:  # equal to one in the graph (or added just before): beside it
                twin_pos.append(pos)
                twin_ids.append(fid)
        if new_rows:
            self.index.add(np.stack(new_rows))
            self.ids = np.concatenate([self.ids, np.array(new_ids, np.int64)])
        if twin_ids:
            self._twin_pos, self._twin_ids = _sorted_twins(
                np.concatenate([self._twin_pos, np.array(twin_pos, np.int64)]),
                np.concatenate([self._twin_ids, np.array(twin_ids, np.int64)]),
            )

    def remove(self, ids: np.ndarray) -> int:
        """Drop the vectors of ``ids`` (unknown ids are ignored); returns how many."""
        if not self.can_remove:
            raise ExprsimError(f"{self.name} cannot remove vectors; rebuild it")
        ids = np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))
        if not len(ids):
            return 0
        return int(self.index.remove_ids(_faiss().IDSelectorBatch(ids)))

    def imbalance(self) -> float:
        """IVF list-size imbalance (1.0 = perfectly even lists; 0.0 for other indexes)."""
        inv = getattr(self.index, "invlists", None)
        if inv is None or self.index.ntotal == 0:
            return 0.0
        return float(inv.imbalance_factor())

    def save(self, path: str | Path, extra: Mapping[str, np.ndarray] | None = None) -> None:
        faiss = _faiss()
        arrays: dict[str, np.ndarray] = {
            "faiss": np.asarray(faiss.serialize_index(self.index)),
            "ids": np.zeros(0, np.int64) if self.ids is None else self.ids,
            "name": np.array(self.name),
            "direct": np.array(self.ids is None),
            "twin_pos": self._twin_pos,
            "twin_ids": self._twin_ids,
            **(extra or {}),
        }
        write_atomically(path, lambda f: save_npz(f, arrays))

    @classmethod
    def load(cls, path: str | Path) -> FaissIndex:
        with np.load(path, allow_pickle=False) as z:
            return cls.from_npz(z)

    @classmethod
    def from_npz(cls, z: Any) -> FaissIndex:
        """From the open ``.npz`` that :meth:`save` wrote."""
        index = _faiss().deserialize_index(z["faiss"])
        direct = "direct" in z.files and bool(z["direct"])
        twins = (z["twin_pos"], z["twin_ids"]) if "twin_ids" in z.files else None
        return cls(index, None if direct else z["ids"], str(z["name"]), twins)


def _sorted_twins(pos: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Twins ``(positions, ids)`` as int64, sorted by position then id."""
    pos, ids = np.asarray(pos, np.int64).reshape(-1), np.asarray(ids, np.int64).reshape(-1)
    order = np.lexsort((ids, pos))
    return pos[order], ids[order]


def search_effort(index: Any, k: int) -> Any:
    """faiss search parameters for ``k`` neighbours, or ``None`` for the index's own. The
    effort set for :data:`EFFORT_K` neighbours misses many of more: on 200,000 uniform
    16-d vectors IVF at nprobe 128 found 0.91 of the true 310 nearest and 0.64 of 5,000,
    HNSW at efSearch 64 0.89 and 0.31 (round 27). So IVF probes ``ceil(sqrt(k / 10))``
    times as many lists (at most all of them: 512 lists gave 1.000 of 310, 1,024 lists
    1.000 of 1,000 and of 5,000), and HNSW searches at least ``2 k`` (1.000 at k >= 310,
    0.999 at 70)."""
    faiss = _faiss()
    if hasattr(index, "nprobe") and hasattr(index, "nlist"):
        nprobe = min(int(index.nlist), int(index.nprobe) * math.ceil(math.sqrt(k / EFFORT_K)))
        if nprobe > int(index.nprobe):
            return faiss.SearchParametersIVF(nprobe=nprobe)
    elif hasattr(index, "hnsw") and 2 * k > int(index.hnsw.efSearch):  # at most every vector
        return faiss.SearchParametersHNSW(efSearch=min(2 * k, max(int(index.ntotal), k)))
    return None


def build_faiss_hnsw(
    vectors: np.ndarray,
    ids: np.ndarray | None = None,
    m: int = 32,
    ef_construction: int = 40,
    ef_search: int = 64,
) -> FaissIndex:
    """HNSW graph over ``(N, D)`` float32 vectors (Euclidean).

    Vectors equal to an earlier one are kept beside the graph, not in it, and found with it
    (:class:`FaissIndex`): a few hundred copies of one photo in the graph left 45 of 200
    other faces unfound (thirteenth robustness round).
    """
    x, ids = as_vectors(vectors, ids)
    faiss = _faiss()
    index = faiss.IndexHNSWFlat(x.shape[1], m)
    index.hnsw.efConstruction = ef_construction
    index.hnsw.efSearch = ef_search
    if not len(x):
        return FaissIndex(index, ids, "faiss-hnsw")
    _, first, group = np.unique(x, axis=0, return_index=True, return_inverse=True)
    group = group.reshape(-1)
    order = np.argsort(first)  # groups in the order of their first vector
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    reps = first[order]
    index.add(np.ascontiguousarray(x[reps]))
    twins = np.setdiff1d(np.arange(len(x)), reps, assume_unique=True)
    return FaissIndex(index, ids[reps], "faiss-hnsw", (rank[group[twins]], ids[twins]))


def build_faiss_ivf(
    vectors: np.ndarray, ids: np.ndarray | None = None, nlist: int | None = None, nprobe: int = 128
) -> FaissIndex:
    """IVF-Flat over ``(N, D)`` float32 vectors (k-means coarse quantiser, Euclidean)."""
    x, ids = as_vectors(vectors, ids)
    faiss = _faiss()
    nlist = nlist or max(1, min(len(x) // 39, int(4 * np.sqrt(max(len(x), 1)))))
    quantizer = faiss.IndexFlatL2(x.shape[1])
    index = faiss.IndexIVFFlat(quantizer, x.shape[1], nlist)
    # nlist is at most N / 39 already; below 39 vectors (nlist 1) faiss would print a
    # warning about too few training points on stderr, past -q
    index.cp.min_points_per_centroid = 1
    if len(x):
        rng = np.random.default_rng(0)
        train = x if len(x) <= 256 * nlist else x[rng.choice(len(x), 256 * nlist, replace=False)]
        index.train(train)
        index.add_with_ids(x, np.ascontiguousarray(ids))
    index.nprobe = nprobe
    return FaissIndex(index, None, "faiss-ivf")


ANN_BACKENDS: dict[str, Callable[..., AnnIndex]] = {
    "exact": ExactIndex,
    "faiss-hnsw": build_faiss_hnsw,
    "faiss-ivf": build_faiss_ivf,
}


def faiss_available() -> bool:
    try:
        _faiss()
    except BackendUnavailableError:
        return False
    return True


def resolve_backend(name: str, n: int) -> str:
    """``"auto"`` -> ``"exact"`` below :data:`EXACT_MAX` vectors (or without faiss), else IVF."""
    if name != "auto":
        if name not in ANN_BACKENDS:
            raise ExprsimError(
                f"unknown ANN backend {name!r}; known: auto, {', '.join(ANN_BACKENDS)}"
            )
        return name
    if n < EXACT_MAX:
        return "exact"
    if not faiss_available():
        log.warning("faiss not installed: exact search over %d vectors (%s)", n, FAISS_INSTALL)
        return "exact"
    return "faiss-ivf"


def build_index(
    vectors: np.ndarray, ids: np.ndarray | None = None, backend: str = "auto", **kwargs: Any
) -> AnnIndex:
    """Build a nearest-neighbour index over ``(N, D)`` vectors with the named backend.

    Raises:
        ExprsimError: an unknown backend, or vectors or ids :func:`as_vectors` refuses.
    """
    x, ids = as_vectors(vectors, ids)
    name = resolve_backend(backend, len(x))
    return ANN_BACKENDS[name](x, ids, **kwargs)


def load_index(path: str | Path) -> AnnIndex:
    """Load an index written by ``save`` (the backend is recorded in the file)."""
    return load_cache(path)[0]


#: the member of an index file (:func:`save_cache`) that holds its :class:`AnnStamp`
STAMP_MEMBER = "stamp"


def save_cache(index: AnnIndex, stamp: AnnStamp, path: str | Path) -> None:
    """Write ``index`` with ``stamp`` inside it: one file, replaced atomically, so an index
    and a stamp of two different writers (or databases) can never pair up."""
    index.save(path, extra={STAMP_MEMBER: np.array(stamp.to_json())})


def load_cache(path: str | Path) -> tuple[AnnIndex, AnnStamp | None]:
    """An index file and the stamp saved inside it (``None``: a file without one, e.g. of an
    older exprsim, or a damaged stamp), both read from one open of the file."""
    with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as z:
        index: AnnIndex = FaissIndex.from_npz(z) if "faiss" in z.files else ExactIndex.from_npz(z)
        stamp = AnnStamp.from_json(str(z[STAMP_MEMBER])) if STAMP_MEMBER in z.files else None
    return index, stamp


def read_cache_stamp(path: str | Path) -> AnnStamp | None:
    """The stamp inside an index file, reading nothing else (``None``: the file has none, or
    a damaged one).

    Raises:
        OSError, ValueError, ...: the file is missing or is not an index file.
    """
    with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as z:
        if STAMP_MEMBER not in z.files:
            return None
        return AnnStamp.from_json(str(z[STAMP_MEMBER]))


@dataclass(frozen=True)
class AnnStamp:
    """Which state of the SQLite store an ANN file was built from (saved inside the file,
    :func:`save_cache`, and as JSON beside it for people to read).

    Attributes:
        generation: the store's generation the file matches.
        model: ``name@version`` of the embeddings.
        backend: :data:`ANN_BACKENDS` name.
        count: vectors in the file.
        log_seq: last ``face_log`` entry applied (``None``: unknown, rebuild to catch up).
        trained_count: vectors when the index was last built from scratch (drift rule).
        imbalance: IVF list imbalance when it was built (drift rule; 0 for other backends).
        store: the identity of the database it was built from (its ``created`` stamp): a
            database deleted and made again starts at the same generations, and must not
            take the old one's file.
        probe: ``(face id, digest of its embedding)`` of the :data:`PROBE_SIZE` highest
            face ids in the file (:func:`probe_of`): a database restored from a backup and
            written again reaches the same generations and face ids with other faces, and
            must not take a file built from the history it left.
        id_sum: the sum of the face ids in the file (``None``: a file saved before it was
            kept, rebuilt): with ``count`` it tells a file whose older faces differ from
            the database's (a restored backup that then lost another face reaches the
            cache's generation with the same highest ids) from a matching one.
    """

    generation: int
    model: str
    backend: str
    count: int
    log_seq: int | None = None
    trained_count: int = 0
    imbalance: float = 0.0
    store: str = ""
    probe: tuple[tuple[int, str], ...] = ()
    id_sum: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "model": self.model,
            "backend": self.backend,
            "count": self.count,
            "log_seq": self.log_seq,
            "trained_count": self.trained_count,
            "imbalance": self.imbalance,
            "store": self.store,
            "probe": [list(p) for p in self.probe],
            "id_sum": self.id_sum,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def save(self, path: str | Path) -> None:
        write_atomically(path, lambda f: f.write(self.to_json().encode()))

    @classmethod
    def load(cls, path: str | Path) -> AnnStamp | None:
        """The stamp in a JSON file (``None``: missing or damaged)."""
        try:
            text = Path(path).read_text()
        except (OSError, ValueError):
            return None
        return cls.from_json(text)

    @classmethod
    def from_json(cls, text: str) -> AnnStamp | None:
        """The stamp of :meth:`to_json` (``None``: damaged text)."""
        try:
            d = json.loads(text)
            seq = d.get("log_seq")
            return cls(
                int(d["generation"]),
                str(d["model"]),
                str(d["backend"]),
                int(d["count"]),
                None if seq is None else int(seq),
                int(d.get("trained_count", 0)),
                float(d.get("imbalance", 0.0)),
                str(d.get("store", "")),
                tuple((int(i), str(h)) for i, h in d.get("probe", [])),
                None if d.get("id_sum") is None else int(d["id_sum"]),
            )
        # a damaged file (not an object, 1e999, ...) is no stamp: the cache is rebuilt
        except (OSError, ValueError, KeyError, TypeError, AttributeError, OverflowError):
            return None


#: faces an :class:`AnnStamp` probes (its highest face ids)
PROBE_SIZE = 8


def embedding_digest(vector: np.ndarray) -> str:
    """A short digest of one stored embedding (its float32 bytes)."""
    import hashlib

    data = np.ascontiguousarray(vector, dtype=np.float32).tobytes()
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def probe_of(
    ids: np.ndarray, vectors: np.ndarray, keep: tuple[tuple[int, str], ...] = ()
) -> tuple[tuple[int, str], ...]:
    """The :data:`PROBE_SIZE` highest ids among ``ids`` (``(N,)``, with their ``(N, D)``
    vectors) and the entries of an earlier probe ``keep``, with their digests."""
    entries = dict(keep)
    for i, v in zip(np.asarray(ids).reshape(-1).tolist(), vectors, strict=True):
        entries[int(i)] = embedding_digest(v)
    return tuple(sorted(entries.items(), reverse=True)[:PROBE_SIZE])


#: Drift rule: rebuild when the number of vectors left [1 / GROWTH, GROWTH] x the number the
#: index was built over ...
GROWTH = 2.0
#: ... or when the IVF list imbalance grew by more than this factor since the build.
IMBALANCE_GROWTH = 1.5


def needs_retrain(stamp: AnnStamp, index: Any, wanted: str, n: int) -> str:
    """Why an index caught up incrementally should be rebuilt instead ("" = it need not).

    The rule (``docs/benchmarks.md``, incremental ANN): rebuild when

    * the backend ``wanted`` for ``n`` vectors is another one (e.g. ``"auto"`` crossed
      :data:`EXACT_MAX`, from exact search to IVF);
    * ``n`` left ``[trained / GROWTH, trained * GROWTH]``: the IVF centroids (and nlist =
      4 sqrt(N)) were fitted to a collection of another size;
    * the IVF list imbalance (``sum(len^2) * nlist / N^2``) grew by more than
      :data:`IMBALANCE_GROWTH` x: new faces crowd a few lists (the data drifted away from
      the training distribution), so a query scans longer lists at the same nprobe.
    """
    if resolve_backend(wanted, n) != stamp.backend:
        return f"backend {stamp.backend} -> {resolve_backend(wanted, n)}"
    if stamp.backend != "faiss-ivf":  # exact search and HNSW graphs have nothing to refit
        return ""
    trained = max(stamp.trained_count, 1)
    if n > trained * GROWTH or n * GROWTH < trained:
        return f"{n} vectors, index trained on {trained}"
    imb = index.imbalance() if hasattr(index, "imbalance") else 0.0
    if stamp.imbalance > 0 and imb > stamp.imbalance * IMBALANCE_GROWTH:
        return f"IVF imbalance {imb:.2f}, {stamp.imbalance:.2f} when trained"
    return ""
