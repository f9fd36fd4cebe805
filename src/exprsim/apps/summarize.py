"""Album summarisation: a few faces showing the different expressions of a collection.

Agglomerative clustering of the faces' embeddings into ``n_clusters`` groups, each group
represented by the member closest to its centre, groups ordered by size (largest first).
Methods (registry :data:`SUMMARY_METHODS`):

* ``"complete-cosine"`` (default): cosine distance, complete (maximum) linkage — FECNet's
  album summaries (Vemulapalli & Agarwala 2019, Sec. 5, footnote 7). Centre: the
  normalised mean; closeness: cosine distance.
* ``"ward"``: Ward linkage on Euclidean distance — FEENet's expression summaries.
  Centre: the mean; closeness: Euclidean distance.
* ``"average-cosine"``: cosine distance, average linkage (a less outlier-driven variant).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from exprsim.clustering import distinct_rows, n_distinct, power_of_two_scale
from exprsim.config import MAX_SUMMARY_CLUSTERS as MAX_SUMMARY_CLUSTERS  # re-exported
from exprsim.equality import array_equality
from exprsim.errors import ArgumentError, ExprsimError, real_array, require_positive_int
from exprsim.wording import count

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SummaryMethod:
    """How to cluster (:func:`exprsim.clustering.agglomerate` arguments, as scikit-learn's
    ``AgglomerativeClustering``) and measure closeness."""

    linkage: str
    metric: str  # "cosine" or "euclidean"


SUMMARY_METHODS: dict[str, SummaryMethod] = {
    "complete-cosine": SummaryMethod("complete", "cosine"),
    "average-cosine": SummaryMethod("average", "cosine"),
    "ward": SummaryMethod("ward", "euclidean"),
}


@array_equality
@dataclass(frozen=True)
class Cluster:
    """One group of similar expressions.

    Attributes:
        rank: 0 for the largest cluster, 1 for the next, ...
        members: item indices, closest to the centre first.
        distances: ``(len(members),)`` distance of each member to the centre (method's metric).
        centre: ``(D,)`` float32 centre (normalised for cosine methods; in the
            embeddings' units for ``"ward"``, where values below float32's range round to 0).
    """

    rank: int
    members: tuple[int, ...]
    distances: np.ndarray
    centre: np.ndarray

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def representative(self) -> int:
        """Index of the member closest to the centre."""
        return self.members[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.rank + 1,  # numbered from 1, as the CLI and the report show them
            "size": self.size,
            "representative": self.representative,
        }


@array_equality
@dataclass(frozen=True)
class Summary:
    """Result of :func:`summarize`.

    Attributes:
        method: clustering method name.
        labels: ``(N,)`` int64 cluster rank of every item.
        clusters: largest first.
        items: the summarised objects (e.g. ``FaceEmbedding``), when given.
        numbers: the number of each item in the list it was picked from (``None``: its
            position in ``items``): :func:`summarize_images` with ``quality_only`` keeps the
            number each face has among all the faces found, as the ``embed`` table numbers
            them. Cluster ``members`` and ``representative`` stay positions in ``items``.
        sampled: ``(distinct faces clustered, distinct faces)`` when the clusters were
            found on an even sample of the distinct embeddings (``max_exact``: the others
            joined the nearest cluster), else ``None`` (every face clustered).
    """

    method: str
    labels: np.ndarray
    clusters: tuple[Cluster, ...]
    items: tuple[Any, ...] | None = None
    numbers: tuple[int, ...] | None = None
    sampled: tuple[int, int] | None = None

    def __repr__(self) -> str:  # sizes, not every item's arrays (2.9 MB for 1,600 faces)
        n = len(self.labels)
        sizes = ", ".join(str(c.size) for c in self.clusters[:10])
        more = ", ..." if len(self.clusters) > 10 else ""
        return (
            f"Summary(method={self.method!r}, {n} item{'s' * (n != 1)}, "
            f"{count(len(self.clusters), 'cluster')} of {sizes}{more} "
            f"face{'s' * (sum(c.size for c in self.clusters) != 1)})"
        )

    def number(self, i: int) -> int:
        """Item ``i``'s number (the ``item`` column of :meth:`to_frame`)."""
        return i if self.numbers is None else int(self.numbers[i])

    @property
    def representatives(self) -> list[int]:
        """Item index of each cluster's representative, largest cluster first."""
        return [c.representative for c in self.clusters]

    def euclidean(self, distances: np.ndarray) -> np.ndarray:
        """Distances to a centre in the method's metric as Euclidean distances, the unit
        of ``search``, ``tag`` and every page: for the cosine methods, between the
        embedding and the centre both at length 1 (``sqrt(2 x cosine distance)``, 0 to 2)."""
        d = np.asarray(distances, dtype=np.float64)
        cosine = SUMMARY_METHODS.get(self.method, SUMMARY_METHODS["ward"]).metric == "cosine"
        return np.sqrt(np.clip(2.0 * d, 0.0, None)) if cosine else d

    def cluster_dict(self, c: Cluster) -> dict[str, Any]:
        """Cluster ``c`` as JSON, with its ``spread``: the members' mean Euclidean distance
        to the centre (:meth:`euclidean`)."""
        spread = float(np.mean(self.euclidean(c.distances))) if c.size else float("nan")
        return {**c.to_dict(), "spread": spread}

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "n_items": len(self.labels),
            "clusters": [
                {**self.cluster_dict(c), "representative": self.number(c.representative)}
                for c in self.clusters
            ],
        }

    def to_frame(self) -> Any:
        """One row per item: ``item, cluster, rank_in_cluster, distance, representative``
        (+ ``source, face`` when the items carry them), ordered by cluster then rank.
        ``item`` is the item's :meth:`number` (the face's row in the ``embed`` table of the
        same inputs, also after ``quality_only`` dropped some); clusters are numbered from 1
        (largest first); ``distance`` is the Euclidean distance to the cluster's centre
        (:meth:`euclidean`), whatever the method."""
        import pandas as pd

        rows = []
        for c in self.clusters:
            for r, (m, d) in enumerate(zip(c.members, self.euclidean(c.distances), strict=True)):
                row: dict[str, Any] = {
                    "item": self.number(m),
                    "cluster": c.rank + 1,
                    "cluster_size": c.size,
                    "rank_in_cluster": r,
                    "distance": float(d),
                    "representative": r == 0,
                }
                if self.items is not None:
                    it = self.items[m]
                    if hasattr(it, "source"):
                        row["source"] = str(it.source)
                    if hasattr(it, "face_index"):
                        row["face"] = int(it.face_index)
                rows.append(row)
        return pd.DataFrame(rows)


def _as_embeddings(items: Any) -> tuple[np.ndarray, tuple[Any, ...] | None]:
    """``(N, D)`` float64 embeddings and the items that carry them (``None``: plain rows).

    Raises:
        ExprsimError: rows of different lengths (a ragged list) or values that are not
            numbers.
    """
    try:
        if isinstance(items, np.ndarray):
            return real_array(items, "the embeddings", np.float64), None
        if hasattr(items, "to_numpy") or hasattr(items, "__array__"):
            # a DataFrame's iteration gives its column labels, a tensor's its rows as tensors
            return real_array(items, "the embeddings", np.float64), None
        seq = tuple(items)
        if not seq:
            return np.zeros((0, 0), dtype=np.float64), None
        carried = [hasattr(s, "embedding") for s in seq]
        if any(carried) and not all(carried):
            raise ExprsimError(
                "faces and plain embeddings are mixed: give face results (with .embedding) "
                "or embedding rows, not both"
            )
        if carried[0]:
            return np.stack([np.asarray(s.embedding, dtype=np.float64) for s in seq]), seq
        return np.asarray(seq, dtype=np.float64).reshape(len(seq), -1), None
    except (ValueError, TypeError) as exc:
        raise ExprsimError(
            "embeddings must be numbers, the same number for every face (got rows of "
            "different lengths or values that are not numbers)"
        ) from exc


def _distance_to(x: np.ndarray, centre: np.ndarray, metric: str) -> np.ndarray:
    from exprsim.distances import cosine_distance, l2

    if metric == "cosine":  # 1 - cos rounds to -2e-16 for a face and its own direction
        rows, _ = power_of_two_scale(x, per_row=True)  # exact: tiny rows keep their direction
        return np.clip(np.asarray(cosine_distance(rows, centre[None, :]), np.float64), 0.0, 2.0)
    return np.asarray(l2(x, centre[None, :], eps=0.0), dtype=np.float64)


def _centre(x: np.ndarray, metric: str) -> np.ndarray:
    """The centre of rows ``x``: their mean, or for the cosine metric the direction of the
    mean of their directions (a row 50 times longer pulled the centre and so the
    representative, though clustering ignores lengths)."""
    if metric == "cosine":
        rows, _ = power_of_two_scale(x, per_row=True)
        x = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-300)
    centre = x.mean(axis=0)
    if metric == "cosine":  # scaled by a power of two first (exact), so a tiny mean is unit too
        centre = power_of_two_scale(centre[None, :], per_row=True)[0][0]
        centre = centre / max(float(np.linalg.norm(centre)), 1e-12)
    return np.asarray(centre, dtype=np.float64)


def _agglomerate(x: np.ndarray, k: int, spec: Any) -> np.ndarray:
    from exprsim.clustering import agglomerate

    return agglomerate(x, k, linkage=spec.linkage, metric=spec.metric)


#: decimals of a (scaled) distance to the centre that order a cluster's members
TIE_DECIMALS = 12

#: distances :func:`_nearest_centre` holds at once (float64: 8 MB, a few times that at peak)
NEAREST_BLOCK = 1 << 20


def _nearest_centre(x: np.ndarray, centres: np.ndarray, metric: str) -> np.ndarray:
    """``(N,)`` index of the nearest of the ``(k, D)`` ``centres`` (unit ones for the cosine
    metric) for every row of ``x``; ties go to the lower centre, as ``argmin``. Rows are
    prepared once and compared with blocks of centres by a matrix product (one centre at a
    time rescaled every row again: 64 ms a centre at 200,000 faces, 25 minutes for 20,000
    clusters), at most :data:`NEAREST_BLOCK` distances at once (an ``(N, k)`` matrix had
    taken 4 GB for 100,000 faces in 2,500 clusters)."""
    x = np.asarray(x, dtype=np.float64)
    c_all = np.asarray(centres, dtype=np.float64)
    if metric == "cosine":  # 1 - cos of unit rows: exact scaling first keeps tiny rows' direction
        rows, _ = power_of_two_scale(x, per_row=True)
        rows = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-300)

        def distances(c: np.ndarray) -> np.ndarray:
            return 1.0 - rows @ c.T

    else:  # squared Euclidean (the same order as the distance), about the rows' mean:
        # far from the origin, |x|^2 + |c|^2 - 2 x.c cancels (an offset of 1e6 with a
        # spread of 0.05 sent most faces to the wrong centre)
        mean = x.mean(axis=0)
        x, c_all = x - mean, c_all - mean
        sq = (x * x).sum(axis=1)

        def distances(c: np.ndarray) -> np.ndarray:
            return sq[:, None] + (c * c).sum(axis=1)[None, :] - 2.0 * (x @ c.T)

    best = np.full(len(x), np.inf)
    raw = np.zeros(len(x), dtype=np.int64)
    step = max(1, NEAREST_BLOCK // max(len(x), 1))
    at = np.arange(len(x))
    for start in range(0, len(c_all), step):
        d = distances(c_all[start : start + step])
        j = d.argmin(axis=1)
        value = d[at, j]
        closer = value < best
        best[closer], raw[closer] = value[closer], start + j[closer]
    return raw


def _sampled_labels(x: np.ndarray, k: int, n_sample: int, spec: Any) -> np.ndarray:
    """Cluster labels ``(N,)`` from the linkage on an even sample of ``n_sample`` of the
    *distinct* rows of ``x`` (so copies of one face cannot crowd out the others and leave
    fewer than ``k`` distinct rows to split); every other item joins the nearest centre,
    and sampled rows (and their copies) keep their linkage cluster."""
    _, first, inverse = np.unique(
        distinct_rows(x, spec.metric), axis=0, return_index=True, return_inverse=True
    )  # the rows n_distinct counts as one face
    inverse = inverse.reshape(-1)
    order = np.argsort(first)  # distinct rows in item order
    pick = order[np.unique(np.linspace(0, len(order) - 1, n_sample).round().astype(np.int64))]
    sample = first[pick]  # item index of each sampled distinct row
    part = _agglomerate(x[sample], k, spec)
    centres = np.stack([_centre(x[sample][part == c], spec.metric) for c in range(k)])
    raw = _nearest_centre(x, centres, spec.metric)
    of_distinct = np.full(len(first), -1, dtype=np.int64)
    of_distinct[pick] = part
    kept = of_distinct[inverse]
    return np.where(kept >= 0, kept, raw)


def _scaled(x: np.ndarray, metric: str) -> tuple[np.ndarray, int]:
    """The checked embeddings times ``2**-e`` (largest ``|value|`` in ``[0.5, 1)``: every
    distance scales exactly, so the clustering is that of ``x``, and no square over- or
    underflows) and ``e``.

    Raises:
        ExprsimError: no rows, not ``(N, D)`` or not finite; an all-zero row (or one too
            small beside the largest to measure) under the cosine metric; euclidean values
            beyond float32's range (the centres are float32).
    """
    if len(x) == 0:
        raise ExprsimError("nothing to summarise: no faces")
    if x.ndim != 2:
        raise ExprsimError(f"embeddings must be a finite (N, D) array, got shape {x.shape}")
    bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if len(bad):  # the shape was fine: say what is not
        raise ExprsimError(
            f"embeddings must be finite: row {int(bad[0])} holds NaN or infinite values"
            + (f" ({len(bad)} rows in all)" if len(bad) > 1 else "")
        )
    top = float(np.abs(x).max(initial=0.0))
    if metric != "cosine" and top > float(np.finfo(np.float32).max):
        raise ExprsimError(
            f"embedding values up to {top:.3g} are beyond float32's range: rescale them "
            "(or use a cosine method, which ignores the scale)"
        )
    if metric == "cosine" and not x.any(axis=1).all():
        raise ExprsimError("the cosine metric cannot place an all-zero embedding")
    scaled, exponent = power_of_two_scale(x)
    if metric == "cosine" and ((scaled * scaled).sum(axis=1) == 0).any():
        raise ExprsimError(
            "some embeddings are over 1e160 times smaller than the largest: the cosine "
            "metric cannot measure them beside it; normalise every row to length 1 first"
        )
    return scaled, int(exponent[0])


#: Above this many items, :func:`summarize` clusters an even sample of this size (the
#: linkage needs memory quadratic in the items) and assigns the rest to the nearest centre.
MAX_EXACT = 2000


def summarize(
    items: np.ndarray | Sequence[Any],
    n_clusters: int = 10,
    method: str = "complete-cosine",
    max_exact: int = MAX_EXACT,
    warn: bool = True,
) -> Summary:
    """Cluster embeddings and pick one representative per cluster.

    The result does not depend on the embeddings' scale (1e-7 or 1e200 as well as unit
    embeddings): they are clustered times a power of two (exact), and ``"ward"`` reports
    its distances and centres in the embeddings' own units.

    Args:
        items: ``(N, D)`` embeddings, or objects with an ``embedding`` attribute
            (``FaceEmbedding``, ``FaceRecord``), kept in :attr:`Summary.items`.
        n_clusters: number of clusters (at most the number of distinct embeddings:
            identical faces, e.g. copies of one photo, always share a cluster).
        method: a key of :data:`SUMMARY_METHODS`.
        max_exact: most items clustered by the linkage itself (an integer >= 1); beyond
            it an evenly spaced sample of this many distinct embeddings (at least
            ``n_clusters``) is clustered, sampled faces and their copies keep their
            cluster, and every other item joins the nearest cluster centre (memory stays
            bounded on long videos and big albums).
        warn: log fewer distinct faces than ``n_clusters`` as a warning (``False``: at
            debug level, for a caller that says it itself, as the web app's answers do).

    Returns:
        A :class:`Summary`, clusters ordered by size (ties: the cluster holding the lowest
        item index first), members ordered by distance to the centre.

    Raises:
        ExprsimError: no items, non-finite or ragged embeddings, an all-zero embedding
            under a cosine method, ``"ward"`` with values beyond float32's range, an
            unknown method, ``n_clusters`` / ``max_exact`` not an integer >= 1, or more
            clusters than :data:`MAX_SUMMARY_CLUSTERS` (among distinct embeddings).
    """
    if method not in SUMMARY_METHODS:
        raise ExprsimError(
            f"unknown summary method {method!r}; known: {', '.join(SUMMARY_METHODS)}"
        )
    spec = SUMMARY_METHODS[method]
    x, kept = _as_embeddings(items)
    n = len(x)
    if n and x.ndim == 2 and x.shape[1] == 0:  # Ward's method made one cluster of them
        raise ExprsimError(f"embeddings of no values ({n} rows of 0): nothing to group")
    x, exponent = _scaled(x, spec.metric)
    require_positive_int(n_clusters, "n_clusters")
    if n_clusters > MAX_SUMMARY_CLUSTERS:  # as asked, whatever the faces
        raise ExprsimError(
            f"n_clusters must be at most {MAX_SUMMARY_CLUSTERS:,} (a summary picks a few "
            f"representatives; {n_clusters:,} clusters would need the distances of as many "
            f"faces at once), got {n_clusters}"
        )
    max_exact = require_positive_int(max_exact, "max_exact")
    distinct = n_distinct(x, metric=spec.metric)  # copies of one photo are one face here
    k = min(int(n_clusters), distinct)
    if k < n_clusters:
        what = (
            count(n, "face") if distinct == n else f"{count(distinct, 'distinct face')} among {n}"
        )
        level = logging.WARNING if warn else logging.DEBUG
        log.log(level, "only %s: %s instead of %d", what, count(k, "cluster"), n_clusters)
    if k == 1 or n == 1:
        raw = np.zeros(n, dtype=np.int64)
    elif k == n:
        raw = np.arange(n, dtype=np.int64)
    elif n <= max(max_exact, k):
        raw = _agglomerate(x, k, spec)
    else:  # bounded memory: cluster a sample, then give every item its nearest centre
        raw = _sampled_labels(x, k, max(max_exact, k), spec)
    # a sample of the distinct rows, when there were more of them than it holds
    sample = max(max_exact, k)
    sampled = (sample, distinct) if n > sample and distinct > sample and 1 < k < n else None
    labels, clusters = _ranked_clusters(x, raw, spec, exponent)
    return Summary(method, labels, tuple(clusters), items=kept, sampled=sampled)


def _ranked_clusters(
    x: np.ndarray, raw: np.ndarray, spec: Any, exponent: int
) -> tuple[np.ndarray, list[Cluster]]:
    """The clusters of labels ``raw`` over (scaled) embeddings ``x``: ordered by size (ties:
    the cluster holding the lowest item first), members by distance to the centre, and the
    labels as those ranks (:func:`summarize`)."""
    groups = [np.flatnonzero(raw == c) for c in np.unique(raw)]
    groups.sort(key=lambda g: (-len(g), int(g[0])))
    labels = np.empty(len(x), dtype=np.int64)
    clusters = []
    for rank, members in enumerate(groups):
        labels[members] = rank
        centre = _centre(x[members], spec.metric)
        d = _distance_to(x[members], centre, spec.metric)
        # nearest first; distances equal but for rounding (the two faces of a two-face
        # cluster, from their mean) are a tie: the lower item first, not rounding noise.
        # Scaled distances (the largest value in [0.5, 1)): 12 decimals are far below any
        # real difference and far above float64's rounding
        order = np.lexsort((members, np.round(d, TIE_DECIMALS)))
        if spec.metric != "cosine":  # back to the embeddings' units (exact)
            centre, d = np.ldexp(centre, exponent), np.ldexp(d, exponent)
        clusters.append(
            Cluster(
                rank=rank,
                members=tuple(int(i) for i in members[order]),
                distances=d[order],
                centre=centre.astype(np.float32),
            )
        )
    return labels, clusters


def summarize_images(
    paths: Iterable[str | Path],
    n_clusters: int = 10,
    method: str = "complete-cosine",
    embedder: Any = None,
    detector: Any = None,
    quality_only: bool = False,
    progress: bool = False,
    failures: list[Any] | None = None,
    interrupted: list[BaseException] | None = None,
) -> Summary:
    """Detect and embed every face of the images under ``paths``, then :func:`summarize`.

    Args:
        paths: image files and/or folders; a file named twice (relative and absolute,
            through a link, in a folder given too) is read once, as the CLI reads it. The
            files are taken in the order of their names (``items`` follow it), so the
            summary is the same whatever order they are named in.
        embedder: an ``Embedder`` (default: ``exprsim.load_model()``).
        quality_only: drop faces failing the quality check (blur, yaw); the others keep
            their numbers among all the faces found (:attr:`Summary.numbers`).
        failures: if given, unreadable images are skipped and their ``ImageError`` appended.
        interrupted: if given, a Ctrl-C (``KeyboardInterrupt``) while the faces are found
            stops the search, is appended to it, and the faces found so far are summarised
            (with none yet, it propagates).

    Returns:
        A :class:`Summary` whose ``items`` are the ``FaceEmbedding`` objects.

    Raises:
        ExprsimError: no image files, no face found, or (``quality_only``) every face
            found failing the quality check (the message counts the reasons).
    """
    from exprsim.io import iter_image_files, unique_files

    for value, name in ((n_clusters, "n_clusters"), (method, "method")):
        if hasattr(value, "embed_images"):  # classify_images, embed_files: (paths, embedder)
            raise ArgumentError(
                f"{name} is a model: summarize_images(paths, n_clusters, method, embedder) "
                "takes it as embedder=..."
            )
    if embedder is None:
        from exprsim.models.embedder import load_model

        embedder = load_model()
    # each file once, in the order of their names: ties (two copies of one photo for a
    # cluster's representative) go the same way whatever order the files were named in
    files = sorted(str(p) for p in unique_files(iter_image_files(paths)))
    if not files:
        raise ExprsimError("no image files found")
    from exprsim.models.embedder import collect_faces, faces_of

    store = _CropStore()
    stream = faces_of(embedder, files, detector, progress, failures)
    faces = collect_faces(stream, lambda _, face: store.keep(face), interrupted)
    if interrupted and not faces:  # nothing to summarise: the Ctrl-C goes on
        raise interrupted[0]
    if not quality_only:
        return summarize(faces, n_clusters=n_clusters, method=method)
    numbers = tuple(i for i, f in enumerate(faces) if f.aligned.quality.ok)
    if faces and not numbers:
        raise ExprsimError(_all_failed(faces))
    summary = summarize([faces[i] for i in numbers], n_clusters=n_clusters, method=method)
    return replace(summary, numbers=numbers)


class _CropStore:
    """Faces' crops copied into large blocks as the faces arrive: each crop's own small
    array is freed at once, so an album's crops do not lie scattered among the freed
    buffers of the images they came from (with two front-end threads, that scattering
    kept about 170 KB of memory per face for a 38 KB crop: 3,200 faces peaked at 902 MB).
    """

    #: crops per block (a 112-pixel block: 19 MB)
    BLOCK = 512

    def __init__(self) -> None:
        self._open: dict[tuple[tuple[int, ...], str], tuple[np.ndarray, int]] = {}

    def keep(self, face: Any) -> Any:
        """``face`` (a ``FaceEmbedding``) with its crop moved into a block (the same
        pixels); anything without a crop array as it is."""
        from exprsim.faces.types import AlignedFace
        from exprsim.models.embedder import FaceEmbedding

        if not isinstance(face, FaceEmbedding) or not isinstance(face.aligned, AlignedFace):
            return face
        aligned = face.aligned
        crop = aligned.crop
        if not isinstance(crop, np.ndarray):
            return face
        key = (crop.shape, crop.dtype.str)
        block, used = self._open.get(key, (None, self.BLOCK))
        if block is None or used == self.BLOCK:
            block, used = np.empty((self.BLOCK, *crop.shape), crop.dtype), 0
        block[used] = crop
        self._open[key] = (block, used + 1)
        return replace(face, aligned=replace(aligned, crop=block[used]))


def _all_failed(faces: Sequence[Any]) -> str:
    """One line for ``quality_only`` when every face failed: how many, and why (each
    reason counted, most frequent first, ties by name)."""
    from collections import Counter

    reasons = Counter(r for f in faces for r in (f.aligned.quality.reasons or ("unknown",)))
    counted = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
    why = ", ".join(f"{name}: {count}" for name, count in counted)
    what = "the 1 face found" if len(faces) == 1 else f"all {len(faces)} faces found"
    return (
        f"nothing to summarise: {what} failed the quality check ({why}); "
        "run without --quality-only (quality_only=False) to summarise them anyway"
    )


#: clusters a summary page shows a strip of members for, and the representatives of its
#: distance heat map: the largest ones (60 KB of pictures a strip: 20,000 clusters made a
#: page of 1.2 GB, and a heat map of 20,000 faces needed 26 GB)
PAGE_CLUSTERS = 200


def summary_page(summary: Summary, title: str = "Expression summary", strip: int = 12) -> Any:
    """An HTML :class:`~exprsim.report.html.Page`: representatives, one strip of members per
    cluster, the embedding map and the distance heat map of the representatives.

    ``summary.items`` must carry crops (``FaceEmbedding``: ``aligned.crop``) for pictures.
    """
    from exprsim.report.html import Page

    page = Page(
        title,
        subtitle=f"{count(len(summary.labels), 'face')}, "
        f"{count(len(summary.clusters), 'cluster')}, {summary.method}",
    )
    crops = _crops_of(summary.items) if summary.items is not None else None
    names = [f"#{c.rank + 1} ({count(c.size, 'face')})" for c in summary.clusters]
    euclid = summary.euclidean  # every page shows Euclidean distances, as search and tag do
    page.heading("Summary: one face per cluster, largest cluster first")
    if crops is not None:
        page.gallery([crops[i] for i in summary.representatives], captions=names, size=112)
    page.paragraph("Distances on this page: Euclidean distance between embeddings (0 to 2).")
    described = _descriptions(summary.items)
    page.table(
        [
            {
                "cluster": f"#{c.rank + 1}",
                "size": c.size,
                "mean distance to centre": float(np.mean(euclid(c.distances))),
                "representative": described(c.representative),
            }
            for c in summary.clusters
        ]
    )
    if crops is not None:
        shown = len(summary.clusters) - PAGE_CLUSTERS
        page.heading(
            "Members of each cluster (closest to the centre first)"
            + (f"; the {PAGE_CLUSTERS} largest of {len(summary.clusters)}" if shown > 0 else "")
        )
        for c, name in zip(summary.clusters[:PAGE_CLUSTERS], names, strict=False):
            page.heading(name, level=3)
            page.gallery(
                [crops[i] for i in c.members[:strip]],
                captions=[f"d={d:.2f}" for d in euclid(c.distances[:strip])],
                alts=[
                    f"{described(i)}, distance {d:.2f}"
                    for i, d in zip(c.members[:strip], euclid(c.distances[:strip]), strict=True)
                ],
                size=64,
            )
            if c.size > strip:
                page.paragraph(f"... and {c.size - strip} more")
    _map_sections(page, summary, crops)
    if summary.items is not None:
        page.heading("All faces")
        frame = summary.to_frame()
        frame["cluster"] = [f"#{v}" for v in frame["cluster"]]  # distance: Euclidean already
        page.table(frame.rename(columns={"distance": "distance to centre"}))
    return page


def _map_sections(page: Any, summary: Summary, crops: Any) -> None:
    """The summary page's map of all faces and the distances between the representatives
    (a heat map, and its numbers for up to :data:`MAX_DISTANCE_TABLE` clusters)."""
    from exprsim.report import plots
    from exprsim.report.html import MAX_DISTANCE_TABLE, distance_rows

    emb = np.stack([np.asarray(it.embedding) for it in summary.items]) if summary.items else None
    if emb is not None and len(emb) >= 2:
        shown = plots.map_size(len(emb))
        page.heading(
            "Map of all faces"
            if shown == len(emb)
            else f"Map of the faces (a sample of {shown} of {len(emb)})"
        )
        page.image(
            plots.embedding_map(emb, thumbnails=crops, labels=[str(v + 1) for v in summary.labels]),
            alt=f"2-D map of {shown} faces, near for similar expressions, each marked with its "
            "cluster's number; every face's cluster is in the last table of the page",
        )
        reps = summary.representatives[:PAGE_CLUSTERS]  # the largest clusters' (quadratic)
        if len(reps) >= 2:
            page.heading(
                "Distances between the representatives"
                + (
                    f" of the {len(reps)} largest clusters"
                    if len(summary.clusters) > len(reps)
                    else ""
                )
            )
            numbered = len(reps) <= MAX_DISTANCE_TABLE
            page.image(
                plots.similarity_heatmap(emb[reps], labels=[str(i + 1) for i in range(len(reps))]),
                alt=f"heat map of the expression distances between the representatives of "
                f"clusters 1 to {len(reps)}"
                + ("; the numbers are in the table below" if numbered else ""),
            )
            if numbered:  # the colours' numbers, for whoever cannot tell the colours
                page.table(distance_rows(emb[reps], [f"#{i + 1}" for i in range(len(reps))]))


def _descriptions(items: Sequence[Any] | None) -> Callable[[int], str]:
    """``describe(i)``: ``file.jpg face 0`` for item ``i``, with the paths instead of the
    file names when two different files share a name (``a/x.jpg``, ``b/x.jpg``); the
    item's index when the items carry no source."""
    from exprsim.apps.compare import display_names

    if not items or not all(hasattr(it, "source") for it in items):
        return lambda i: f"item {i}"
    names = display_names([str(it.source) for it in items])

    def describe(i: int) -> str:
        return f"{names[i]} face {int(getattr(items[i], 'face_index', 0))}"

    return describe


def _crops_of(items: Sequence[Any]) -> list[np.ndarray | None]:
    out: list[np.ndarray | None] = []
    for it in items:
        aligned = getattr(it, "aligned", None)
        out.append(
            getattr(aligned, "crop", None) if aligned is not None else getattr(it, "crop", None)
        )
    return out
