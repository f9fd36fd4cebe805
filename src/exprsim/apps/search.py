"""Expression search: the indexed faces whose expression looks most like a query face.

:func:`search` embeds the query's face (unless told which: the largest that passes the
quality check, else the largest; ``faces.pipeline.usable_face``), asks the
:class:`~exprsim.index.store.FaceIndex` for its nearest neighbours and filters them:

* ``exclude_same_image`` (default): drops faces from the query's own file (same resolved
  path, or same content hash);
* ``exclude_same_identity``: drops faces of the same person, judged by dlib's 128-d face
  descriptor (distance < 0.6, dlib's own threshold) — needs ``pip install 'exprsim[dlib]'``
  and raises :class:`~exprsim.errors.BackendUnavailableError` otherwise. Descriptors are
  computed from the source images (cached in the database);
* quality filters: ``quality_ok_only``, ``min_sharpness``, ``max_abs_yaw``.

The index is asked for more neighbours than ``k`` (and more again) until ``k`` faces pass
or the whole index was seen: on an approximate index (IVF, HNSW, pgvector) the hits are
then approximate, as its search. With a quality filter the faces that pass it are ranked
exactly instead (:meth:`~exprsim.index.FaceIndex.nearest_passing`: SQLite reads their
embeddings, PostgreSQL scans them in the server), so the search returns the true ``k``
nearest faces that pass: a strict filter drops most of an approximate index's
candidates, and the nearest faces that pass are the ones it misses. Hit distances are
computed exactly (float64) from the stored embeddings.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from exprsim.equality import array_equality
from exprsim.errors import ExprsimError, ImageError, printable, require_positive_int
from exprsim.faces.identity import IDENTITY_THRESHOLD, IdentityEncoder
from exprsim.wording import count

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- results


@array_equality
@dataclass(frozen=True)
class SearchHit:
    """One retrieved face.

    Attributes:
        rank: 1 for the nearest.
        face_id: id in the index.
        distance: Euclidean distance between embeddings (``[0, 2]``).
        similarity: cosine similarity ``1 - distance^2 / 2``.
        identity_distance: dlib descriptor distance to the query (identity checks only).
    """

    rank: int
    face_id: int
    distance: float
    source: str
    face_index: int
    box: np.ndarray
    quality_ok: bool
    sharpness: float
    yaw: float
    label: str | None = None
    tags: tuple[str, ...] = ()
    identity_distance: float | None = None

    @property
    def similarity(self) -> float:
        return 1.0 - self.distance**2 / 2.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "face_id": self.face_id,
            "distance": self.distance,
            "similarity": self.similarity,
            "source": printable(self.source),  # as every other table: no live control chars
            "face": self.face_index,
            "quality_ok": self.quality_ok,
            "sharpness": self.sharpness,
            "yaw": self.yaw,
            "label": self.label,
            "tags": ",".join(self.tags),
            "identity_distance": self.identity_distance,
        }


@array_equality
@dataclass(frozen=True)
class SearchResult:
    """Result of :func:`search`.

    Attributes:
        query_source: the query's path (or ``"<array>"``).
        query_face: the query face's index in its image.
        query_embedding: ``(16,)`` float32.
        query_crop: the query's aligned crop (when known).
        hits: nearest first.
        excluded: how many candidates each filter removed, each face counted once (a face
            of the query's own image as ``same_image``, whatever else it fails).
        model: the index's model.
    """

    query_source: str
    query_face: int
    query_embedding: np.ndarray
    hits: tuple[SearchHit, ...]
    excluded: dict[str, int] = field(default_factory=dict)
    model: str = ""
    query_crop: np.ndarray | None = None

    def __repr__(self) -> str:  # the hits' sizes, not the arrays
        nearest = f", nearest at {self.hits[0].distance:.3f}" if self.hits else ""
        return (
            f"SearchResult(query={self.query_source!r} face {self.query_face}, "
            f"{len(self.hits)} hits{nearest}, model={self.model!r})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": printable(self.query_source),
            "query_face": self.query_face,
            "model": self.model,
            "excluded": dict(self.excluded),
            "hits": [h.to_dict() for h in self.hits],
        }

    def to_frame(self) -> Any:
        import pandas as pd

        rows = [h.to_dict() for h in self.hits]
        return pd.DataFrame(rows) if rows else pd.DataFrame(columns=list(HIT_COLUMNS))


#: Columns of :meth:`SearchResult.to_frame`.
HIT_COLUMNS: tuple[str, ...] = (
    "rank", "face_id", "distance", "similarity", "source", "face", "quality_ok", "sharpness",
    "yaw", "label", "tags", "identity_distance",
)  # fmt: skip


# ----------------------------------------------------------------------------- search


@dataclass
class _Query:
    source: str
    face_index: int
    embedding: np.ndarray
    crop: np.ndarray | None
    image: np.ndarray | None
    box: np.ndarray | None
    path: str | None
    sha256: str | None


def _query_face(query: Any, embedder: Any, face: int | None, detector: Any) -> _Query:
    from exprsim.io import decode_image, load_image, read_whole

    if hasattr(query, "embedding") and hasattr(query, "aligned"):  # a FaceEmbedding
        from exprsim.index.store import _embedding, _unit

        src = str(query.source)
        path, sha, image = _source_file(src)
        # checked as a stored face's is (a length-5 embedding was 4 away from every face,
        # an all-zero one 1 away) and copied: an edit of the caller's array changed both
        emb = _unit(_embedding(query.embedding, "the query face"), "the query face")
        return _Query(src, int(query.face_index), np.array(emb, np.float32),
                      np.array(query.aligned.crop), image, np.array(query.aligned.face.box),
                      path, sha)  # fmt: skip
    if isinstance(query, str | os.PathLike):  # os.DirEntry too: it was read as pixels
        p = Path(os.fsdecode(query))
        try:  # a name too long for the file system raises instead of answering False
            if not p.is_file():
                raise ImageError(*_not_a_file(p))
        except OSError as exc:
            raise ImageError(p, f"cannot read ({exc.strerror or exc})") from exc
        data, _ = read_whole(p)  # the size limit before a byte is read, never a pipe
        image = decode_image(data, str(p))
        # shown as text: a file name's undecodable bytes become \xe9 escapes (as summarize)
        path, sha, src = str(p.resolve()), hashlib.sha256(data).hexdigest(), printable(str(p))
    elif isinstance(query, bytes | bytearray | memoryview):
        # a file's bytes: its own file is excluded
        image = decode_image(bytes(query))
        path, sha, src = None, hashlib.sha256(bytes(query)).hexdigest(), "<bytes>"
    else:
        image = load_image(query)
        path = sha = None
        src = "<array>"
    faces = embedder.embed_images([image], detector=detector)
    if not faces:
        raise ImageError(src, "no face found in the query image")
    if face is None:
        from exprsim.faces.pipeline import usable_face

        face = usable_face(faces, src)
    if not 0 <= face < len(faces):
        raise ImageError(src, f"no face number {face} (found {count(len(faces), 'face')})")
    fe = faces[face]
    return _Query(src, face, np.asarray(fe.embedding, np.float32), fe.aligned.crop, image,
                  np.asarray(fe.aligned.face.box), path, sha)  # fmt: skip


def _source_file(src: str) -> tuple[str | None, str | None, np.ndarray | None]:
    """``(resolved path, SHA-256, pixels)`` of a face's source when it is a readable image
    file, else ``(None, None, None)``: a ``<array>`` placeholder, a name too long for the
    file system or holding a NUL, a file gone, unreadable or no longer an image (the face's
    own embedding is still the query; only its file is not excluded from the results)."""
    from exprsim.io import decode_image, read_whole

    p = Path(src)
    try:
        if not p.is_file():
            return None, None, None
        data, _ = read_whole(p)  # its size limit first: a huge file is not read
        image = decode_image(data, str(p))
        return str(p.resolve()), hashlib.sha256(data).hexdigest(), image
    except (OSError, ValueError, ExprsimError) as exc:
        log.debug("%s: the query face's file is not read (%s)", printable(src), exc)
        return None, None, None


def _not_a_file(p: Path) -> tuple[str | Path, str]:
    """``(name, reason)`` of a query path that is no file: a URL, a folder, or nothing."""
    from exprsim.io import URL_PROBLEM, as_url

    url = as_url(p)
    if url is not None and not p.exists():
        return url, URL_PROBLEM
    if p.is_dir():
        return p, "is a folder; the query is one image file"
    return p, "no such file"


class _IdentityFilter:
    def __init__(self, index: Any, query: _Query, threshold: float) -> None:
        self.index = index
        self.encoder = IdentityEncoder()
        self.threshold = threshold
        if query.image is None or query.box is None:
            raise ExprsimError("identity exclusion needs the query image (give a path or an array)")
        self.query_desc = self.encoder.descriptor(query.image, query.box)
        self._images: dict[str, np.ndarray | None] = {}

    def _image(self, path: str) -> np.ndarray | None:
        if path not in self._images:
            from exprsim.io import load_image

            try:
                self._images[path] = load_image(path)
            except ImageError:
                log.warning("%s: cannot read the image for the identity check", path)
                self._images[path] = None
        return self._images[path]

    def distances(self, records: list[Any]) -> dict[int, float | None]:
        ids = [r.id for r in records]
        cached = self.index.identity_descriptors(ids)
        new: dict[int, np.ndarray | None] = {}
        unread: dict[int, np.ndarray | None] = {}  # not kept: the file may be back next time
        for r in records:
            if r.id in cached:
                continue
            img = self._image(r.source)
            if img is None:
                unread[r.id] = None
            else:  # None when dlib finds no face there: kept, the answer stays the same
                new[r.id] = self.encoder.descriptor(img, r.box)
        if new:
            self.index.store_identity_descriptors(new)
        cached.update(new)
        cached.update(unread)
        return {
            fid: (None if d is None else float(np.linalg.norm(d - self.query_desc)))
            for fid, d in cached.items()
        }


def search(
    query_image: Any,
    index: Any,
    k: int = 20,
    exclude_same_image: bool = True,
    exclude_same_identity: bool = False,
    quality_ok_only: bool = False,
    min_sharpness: float | None = None,
    max_abs_yaw: float | None = None,
    embedder: Any = None,
    face: int | None = None,
    detector: Any = None,
    identity_threshold: float = IDENTITY_THRESHOLD,
    *,
    query_sha256: str | None = None,
) -> SearchResult:
    """Find the ``k`` indexed faces whose expression is nearest to the query face's.

    Args:
        query_image: a path, a file's bytes, an ``(H, W, 3)`` image array, or a
            ``FaceEmbedding`` (its embedding normalised, with a warning, when not of length
            1). With ``exclude_same_image``, a path or bytes also exclude any indexed file
            of the same content.
        index: a :class:`~exprsim.index.store.FaceIndex`.
        k: number of results.
        exclude_same_image: drop faces from the query's own image file.
        exclude_same_identity: drop faces of the query's person (dlib descriptor).
        quality_ok_only: keep only faces that passed the quality check.
        min_sharpness: keep faces at least this sharp (eye-patch sharpness).
        max_abs_yaw: keep faces turned at most this many degrees.
        embedder: the model (default: the index's embedder, i.e. ``exprsim.load_model()``).
        face: which face of the query image (0 = the largest); ``None``: the largest
            that passes the quality check, else the largest
            (:func:`~exprsim.faces.pipeline.usable_face`).
        identity_threshold: dlib descriptor distance below which two faces are one person.
        query_sha256: the SHA-256 (hex) of the query's file when the query is given as an
            array or a ``FaceEmbedding`` cut from one (an upload, say): with
            ``exclude_same_image``, indexed files of that content are the query's image.

    Returns:
        A :class:`SearchResult` with up to ``k`` hits, nearest first.

    Raises:
        ImageError: the query cannot be read or holds no face.
        ExprsimError: a ``FaceEmbedding`` whose embedding is not one row of 16 finite
            numbers, or is all zeros.
        ModelMismatchError: the embedder is not the model the index was built with.
        BackendUnavailableError: identity exclusion without dlib.
    """
    k = require_positive_int(k, "k")
    _check_filters(min_sharpness, max_abs_yaw, identity_threshold)
    _check_face(face)
    if not hasattr(index, "query"):
        raise ExprsimError(
            f"index must be a FaceIndex (e.g. FaceIndex({str(index)[:60]!r})), got "
            f"{type(index).__name__}"
        )
    embedder = embedder if embedder is not None else index.embedder
    _check_query_model(index, embedder)
    if exclude_same_identity:
        IdentityEncoder()  # fail early and clearly when dlib is missing
    q = _query_face(query_image, embedder, face, detector)
    if query_sha256 is not None:
        q = replace(q, sha256=str(query_sha256).lower())
    identity = _IdentityFilter(index, q, identity_threshold) if exclude_same_identity else None
    filters = _Filters(exclude_same_image, quality_ok_only, min_sharpness, max_abs_yaw)
    hits, excluded = _collect_hits(index, q, k, filters, identity)
    return SearchResult(
        query_source=q.source,
        query_face=q.face_index,
        query_embedding=q.embedding,
        hits=tuple(hits),
        excluded=excluded,
        model=index.model or embedder.config.name_version,
        query_crop=q.crop,
    )


def _check_face(face: Any) -> None:
    """Refuse a face number that is not ``None`` or an integer >= 0."""
    if face is not None and (
        isinstance(face, bool) or not isinstance(face, int | np.integer) or face < 0
    ):
        raise ExprsimError(f"face must be an integer >= 0 (0: the largest) or None, got {face!r}")


def _check_filters(
    min_sharpness: float | None, max_abs_yaw: float | None, identity_threshold: float
) -> None:
    """Refuse filter values that would silently keep nothing (NaN) or fail deep inside."""
    for name, value in (
        ("min_sharpness", min_sharpness),
        ("max_abs_yaw", max_abs_yaw),
        ("identity_threshold", identity_threshold),
    ):
        if value is None and name != "identity_threshold":
            continue
        if isinstance(value, bool) or not isinstance(value, int | float | np.number):
            raise ExprsimError(f"{name} must be a number, got {value!r}")
        if not math.isfinite(float(value)) or float(value) < 0:
            raise ExprsimError(f"{name} must be a finite number >= 0, got {value!r}")


@dataclass(frozen=True)
class _Filters:
    """The candidate filters of :func:`search` other than identity."""

    exclude_same_image: bool
    quality_ok_only: bool
    min_sharpness: float | None
    max_abs_yaw: float | None

    def reason(self, r: Any, q: _Query) -> str | None:
        """Why record ``r`` is excluded (an ``excluded`` key), or ``None`` to keep it."""
        if self.exclude_same_image and (
            (q.path is not None and r.source == q.path)
            or (q.sha256 is not None and r.sha256 == q.sha256)
        ):
            return "same_image"
        return "quality" if self.fails_quality(r) else None

    def fails_quality(self, r: Any) -> bool:
        """Whether record ``r`` fails the quality filters."""
        return bool(
            (self.quality_ok_only and not r.quality_ok)
            or (self.min_sharpness is not None and not r.sharpness >= self.min_sharpness)
            or (self.max_abs_yaw is not None and not abs(r.yaw) <= self.max_abs_yaw)
        )

    @property
    def narrows(self) -> bool:
        """Whether a quality filter is on (it may drop most faces, not just a few)."""
        return bool(
            self.quality_ok_only or self.min_sharpness is not None or self.max_abs_yaw is not None
        )


class _Collector:
    """Candidates in, hits out: applies the filters, counts what each removed, and scores
    every hit exactly (``|q - e|`` in float64 from its stored embedding, whatever distance
    the backend's float32 arithmetic gave)."""

    def __init__(
        self, index: Any, q: _Query, k: int, filters: _Filters, identity: _IdentityFilter | None
    ) -> None:
        self.index, self.q, self.k, self.filters, self.identity = index, q, k, filters, identity
        self.q64 = np.asarray(q.embedding, np.float64).reshape(-1)
        self.excluded = {"same_image": 0, "same_identity": 0, "quality": 0}
        #: faces counted as the query's own image that fail the quality filters too
        self.own_failing = 0
        self.hits: list[SearchHit] = []
        self.seen: set[int] = set()

    @property
    def full(self) -> bool:
        return len(self.hits) >= self.k

    def offer(self, ids: Any, dists: Any) -> None:
        """:meth:`take` the faces among ``ids`` (with the distances the search gave) not
        examined yet, in order; ids below 0 (an index's padding) are skipped."""
        fresh = [
            (i, d)
            for i, d in zip(np.asarray(ids).tolist(), np.asarray(dists).tolist(), strict=True)
            if i >= 0 and i not in self.seen
        ]
        if fresh:
            self.take(fresh)

    def take(self, fresh: list[tuple[int, float]]) -> None:
        """Examine the faces ``fresh`` (id, distance the search gave) in order, until ``k``
        hits are found."""
        self.seen.update(i for i, _ in fresh)
        records = {r.id: r for r in self.index.get([i for i, _ in fresh])}
        cand = []
        for fid, d in fresh:
            r = records.get(fid)
            if r is None:
                continue
            why = self.filters.reason(r, self.q)
            if why is not None:
                self.excluded[why] += 1
                self.own_failing += why == "same_image" and self.filters.fails_quality(r)
                continue
            cand.append((r, d))
        ident = self.identity
        id_dist = ident.distances([r for r, _ in cand]) if ident is not None and cand else {}
        for r, d in cand:
            idd = id_dist.get(r.id)
            if ident is not None and idd is not None and idd < ident.threshold:
                self.excluded["same_identity"] += 1
                continue
            self.hits.append(_hit(len(self.hits) + 1, r, self.exact(r, d), idd))
            if self.full:
                break

    def exact(self, r: Any, d: float) -> float:
        """``|q - e|`` in float64 from the record's stored embedding (``d``, the distance
        the search gave, for a record without one)."""
        e = getattr(r, "embedding", None)
        if e is None:
            return float(d)
        return float(np.linalg.norm(np.asarray(e, np.float64).reshape(-1) - self.q64))

    def ranked(self) -> list[SearchHit]:
        """The hits nearest first (ties: the order examined), ranked from 1."""
        order = sorted(self.hits, key=lambda h: h.distance)
        return [replace(h, rank=r) for r, h in enumerate(order, start=1)]


def _collect_hits(
    index: Any, q: _Query, k: int, filters: _Filters, identity: _IdentityFilter | None
) -> tuple[list[SearchHit], dict[str, int]]:
    """The ``k`` nearest faces that pass the filters, nearest first, and the count each
    filter removed.

    The index (exact or approximate) is asked for more and more neighbours until ``k``
    pass. With a quality filter the passing faces are ranked exactly instead
    (:func:`_passing_walk`): an approximate index (IVF, HNSW, pgvector) asked for many
    neighbours returns an incomplete list, and the nearest faces that pass a strict
    filter are the ones it misses. (The same-image and identity filters drop a few faces,
    the query person's.)
    """
    col = _Collector(index, q, k, filters, identity)
    total = len(index)
    if not total:
        return [], col.excluded
    if not filters.narrows:
        _index_walk(col, total)
        return col.ranked(), col.excluded
    passing = index.count_passing(**_quality_options(filters))
    if getattr(index, "searches_exactly", False) and passing * EXACT_WALK_SHARE >= total:
        _index_walk(col, total)  # an exact index's neighbours in order are the truth
    else:
        _passing_walk(col)
    if filters.exclude_same_image:  # the query's own faces that fail the quality filters:
        # counted as its own whichever walk answered (the passing walk never meets them)
        own = index.faces_of_file(q.path, q.sha256)
        unseen = sum(r.id not in col.seen and filters.fails_quality(r) for r in own)
        col.excluded["same_image"] += unseen
        col.own_failing += unseen
    # every face the quality filters leave out, each face counted once: the query's own
    # faces are counted as such already
    col.excluded["quality"] = total - passing - col.own_failing
    return col.ranked(), col.excluded


#: An exact index answers a quality-filtered search itself when at least 1 / this share of
#: the faces pass (few candidates fail on the way); below, reading the passing faces is
#: faster (measured: 30,000 faces, 1% passing: 134 ms walking the exact index, 8 ms)
EXACT_WALK_SHARE = 4


def _index_walk(col: _Collector, total: int) -> None:
    """Ask the index for more and more neighbours until ``k`` pass the filters or the
    whole index was seen; an approximate index that runs out of candidates first has the
    faces it never returned scanned exactly."""
    fetch = min(total, col.k * 3 + 10)
    while not col.full:
        dist, ids = col.index.query(col.q.embedding, k=fetch)
        col.offer(ids[0], dist[0])
        if fetch >= total:
            break
        fetch = min(total, fetch * 4)
    if not col.full and len(col.seen) < total:  # the approximate index ran out of candidates
        _exact_walk(col)


def _quality_options(f: _Filters) -> dict[str, Any]:
    return {
        "quality_ok_only": f.quality_ok_only,
        "min_sharpness": f.min_sharpness,
        "max_abs_yaw": f.max_abs_yaw,
    }


def _passing_walk(col: _Collector) -> None:
    """The faces passing the quality filters, nearest first and exactly (the index ranks
    them: :meth:`~exprsim.index.FaceIndex.nearest_passing`), in growing batches until
    ``k`` pass the other filters too."""
    opts = _quality_options(col.filters)
    fetch = col.k * 3 + 10
    while not col.full:
        ids, dist = col.index.nearest_passing(col.q.embedding, fetch, **opts)
        col.offer(ids, dist)
        if len(ids) < fetch:
            break
        fetch *= 4


def _exact_walk(col: _Collector) -> None:
    """Examine the faces not seen yet in exact distance order (``|q - e|`` in float64 over
    every stored embedding: 16 numbers a face, ~0.1 s for 100,000 faces, most of it
    reading them), in growing batches until ``k`` pass (ties: the lower face id first)."""
    from exprsim.index.ann import exact_distances

    all_ids, emb = col.index.embeddings()
    d = exact_distances(col.q64, emb)
    order = np.argsort(d, kind="stable")
    pos, step = 0, col.k * 3 + 10
    while pos < len(order) and not col.full:
        part = order[pos : pos + step]
        col.offer(all_ids[part], d[part])
        pos, step = pos + step, step * 4


def _hit(rank: int, r: Any, distance: float, identity_distance: float | None) -> SearchHit:
    return SearchHit(
        rank=rank,
        face_id=r.id,
        distance=distance,
        source=r.source,
        face_index=r.face_index,
        box=r.box,
        quality_ok=r.quality_ok,
        sharpness=r.sharpness,
        yaw=r.yaw,
        label=r.label,
        tags=r.tags,
        identity_distance=identity_distance,
    )


def _check_query_model(index: Any, embedder: Any) -> None:
    """Refuse an index holding embeddings of another model than the query's: another
    ``name@version``, or the same with other weights or settings (content digests)."""
    from exprsim.index.store import REEMBED_HINT, ModelMismatchError
    from exprsim.models.identity import index_mismatch

    differ = index_mismatch(index, embedder)
    if differ is not None:
        raise ModelMismatchError(
            f"{index.path} holds embeddings of {differ[0]}, the query model is {differ[1]} "
            f"({REEMBED_HINT})"
        )


def search_page(result: SearchResult, index: Any, title: str = "Expression search") -> Any:
    """HTML page: the query crop, then the ranked crops with their distances, then a table."""
    from exprsim.report.html import MAX_GALLERY, Page

    page = Page(
        title,
        subtitle=(
            f"query {result.query_source} (face {result.query_face}), model {result.model}; "
            "d = Euclidean distance between embeddings (0 to 2)"
        ),
    )
    page.heading("Query")
    page.gallery([result.query_crop], captions=[Path(result.query_source).name], size=128)
    page.heading(f"{len(result.hits)} nearest faces by expression")
    page.gallery(
        # crops of the hits shown only (the gallery counts the rest): 20,000 hits read
        # and decoded 550 MB of crops for a page of 500
        [index.crop(h.face_id) if i < MAX_GALLERY else None for i, h in enumerate(result.hits)],
        captions=[f"{h.rank}. d={h.distance:.3f}" for h in result.hits],
        alts=[
            f"{h.rank}: {Path(h.source).name} face {h.face_index}, distance {h.distance:.3f}"
            for h in result.hits
        ],
        size=112,
    )
    ex = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in result.excluded.items() if v)
    if ex:
        page.paragraph(f"Excluded candidates — {ex}.")
    # distances to the terminal's 4 decimals: the query's own face, embedded again, read
    # 1.786e-07 here and 0.0000 there
    frame = result.to_frame()
    near = [c for c in ("distance", "similarity", "identity_distance") if c in frame.columns]
    page.table(frame.astype({c: float for c in near}).round({c: 4 for c in near}))
    return page
