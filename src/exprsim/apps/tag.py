"""Reference-face tagging (FEENet): name an expression by showing one face of it.

A user stores one or more *reference faces* under a name (``"skeptical"``, ``"alpha"``, ...)
in the :class:`~exprsim.index.store.FaceIndex` database; a face is tagged with every name
whose nearest reference lies closer than a threshold in the embedding (Euclidean distance
between L2-normalised embeddings, in ``[0, 2]``). No retraining is involved.

The threshold belongs to the model: its ``config.json`` carries ``tag_threshold``, calibrated
with :func:`calibrate_from_ferplus` (references and candidates drawn from the held-out part
of FER+ Training; a pair counts as a true match when both faces share their majority
label; :func:`calibrate_threshold` measures precision and recall of such tagging). A model
without one falls back to :data:`DEFAULT_THRESHOLD` = 0.5, FEENet's ("0.5 works well in
practice").
"""

from __future__ import annotations

import logging
import math
import numbers
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from exprsim.apps.compare import display_names
from exprsim.equality import array_equality
from exprsim.errors import ExprsimError, ImageError, printable, real_array
from exprsim.index.store import check_new_tag_name, check_tag_name, unit_rows
from exprsim.models.identity import embedder_digest, index_mismatch
from exprsim.wording import count

log = logging.getLogger(__name__)

#: FEENet's distance threshold for reference-face tagging (models without a calibrated one).
DEFAULT_THRESHOLD = 0.5

#: times :meth:`Tagger.tag_index` matches again when the references change under it
TAG_ATTEMPTS = 3


def model_threshold(embedder: Any) -> float:
    """The tagging threshold calibrated for ``embedder``'s model, else :data:`DEFAULT_THRESHOLD`."""
    config = getattr(embedder, "config", None)
    value = getattr(config, "tag_threshold", None)
    return DEFAULT_THRESHOLD if value is None else float(value)


@array_equality
@dataclass(frozen=True)
class TagReference:
    """One stored reference face."""

    id: int
    name: str
    source: str
    embedding: np.ndarray
    crop: np.ndarray | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "source": self.source}


@array_equality
@dataclass(frozen=True)
class TagResult:
    """Tags of one face.

    Attributes:
        source, face_index: where the face is.
        tags: names whose nearest reference is closer than the threshold, nearest first.
        distances: name -> distance to that name's nearest reference.
        threshold: the threshold applied.
        crop: the aligned crop, kept by :meth:`Tagger.tag` for the first
            :data:`~exprsim.report.html.MAX_GALLERY` faces only (the ones its page shows;
            ``None`` after them): 100,000 faces' crops would hold about 4 GB.
    """

    source: str
    face_index: int
    tags: tuple[str, ...]
    distances: dict[str, float]
    threshold: float
    crop: np.ndarray | None = None

    @property
    def best(self) -> str | None:
        """The nearest tag below the threshold, or ``None``."""
        return self.tags[0] if self.tags else None

    def to_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "source": self.source,
            "face": self.face_index,
            "tags": ",".join(self.tags),
            "best": self.best,
            "best_distance": min(self.distances.values()) if self.distances else float("nan"),
        }
        row.update({f"d_{k}": v for k, v in sorted(self.distances.items())})
        return row


class TagResults(list[TagResult]):
    """A list of :class:`TagResult` that converts to a DataFrame."""

    #: stopped by a Ctrl-C: the faces of the images done (``Tagger.tag(keep_on_interrupt)``)
    interrupted: bool = False

    def to_frame(self) -> Any:
        import pandas as pd

        rows = [r.to_dict() for r in self]
        fixed = ["source", "face", "tags", "best", "best_distance"]
        extra = dict.fromkeys(k for r in rows for k in r if k not in fixed)
        return pd.DataFrame(rows, columns=[*fixed, *extra])  # a header even when empty

    def to_dict(self) -> dict[str, Any]:
        return {"faces": [r.to_dict() for r in self]}


def _check_threshold(threshold: object) -> float:
    """``threshold`` as a float if it is a finite number >= 0 (a distance), else
    :class:`ExprsimError` (a NaN threshold would silently give no tags)."""
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, numbers.Real)
        or not math.isfinite(threshold)
        or threshold < 0
    ):
        raise ExprsimError(f"threshold must be a finite distance >= 0, got {threshold!r}")
    return float(threshold)


def match_tags(
    embeddings: np.ndarray,
    ref_embeddings: np.ndarray,
    ref_names: Sequence[str],
    threshold: float = DEFAULT_THRESHOLD,
    distances: bool = True,
) -> list[tuple[tuple[str, ...], dict[str, float]]]:
    """Tags of each of ``(N, D)`` embeddings given ``(R, D)`` references and their names.

    Returns:
        Per embedding: the names with nearest-reference distance strictly below
        ``threshold`` (nearest first), and every name's nearest-reference distance (an
        empty dict with ``distances=False``: memory for the tags only).

    Embeddings and references not of length 1 are normalised first, with a warning
    (:func:`exprsim.index.store.unit_rows`): ``threshold`` is a distance between unit
    embeddings.

    Raises:
        ExprsimError: a NaN, infinite or negative ``threshold``, NaN, infinite or all-zero
            embeddings or references, not one name per reference, or mismatched sizes.
    """
    threshold = _check_threshold(threshold)
    x = _numbers(embeddings, "the faces' embeddings")
    if (x.ndim == 1 and x.size == 0) or (x.ndim == 2 and len(x) == 0):  # [] or (0, D): no face
        return []
    x = np.atleast_2d(x)
    r = check_references(ref_embeddings, ref_names)
    if x.ndim != 2:
        raise ExprsimError(f"embeddings must be (N, D) or (D,), got {x.shape}")
    if len(r) and x.shape[1] != r.shape[1]:  # before any warning about their lengths
        raise ExprsimError(f"embeddings of {x.shape[1]} values, references of {r.shape[1]}")
    if not np.isfinite(x).all():
        raise ExprsimError("embeddings to tag hold NaN or infinite values (or None)")
    x = unit_rows(x, "embeddings to tag")  # distances are those of unit embeddings
    names = sorted(set(ref_names))
    if len(r) == 0 or len(x) == 0:
        return [((), {}) for _ in range(len(x))]
    ref_names_arr = np.asarray(ref_names)
    groups = [np.flatnonzero(ref_names_arr == n) for n in names]
    out = []
    for per_name in _per_name_distances(x, r, groups):
        for row in per_name:
            dist = {n: float(v) for n, v in zip(names, row, strict=True)}
            hits = sorted((v, n) for n, v in dist.items() if v < threshold)
            out.append((tuple(n for _, n in hits), dist if distances else {}))
    return out


def _numbers(values: Any, what: str) -> np.ndarray:
    """``values`` as a float64 array, refused in one line when it holds no numbers (``None``
    read as an object array was "NaN or infinite values")."""
    try:
        return np.asarray(real_array(values, what), dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ExprsimError(f"{what}: not an array of numbers ({exc})") from exc


def check_references(
    ref_embeddings: Any, ref_names: Sequence[str], dim: int | None = None
) -> np.ndarray:
    """``(R, D)`` reference embeddings, unit rows (float64), checked with their names: one
    name per reference, finite, none all zeros, and ``D == dim`` when given (the embedder's
    width: :func:`exprsim.video.analyze_video` checks them before the video is read).

    Raises:
        ExprsimError: naming what is wrong.
    """
    raw = _numbers(ref_embeddings, "reference embeddings")
    if raw.ndim == 1 and raw.size == 0:  # []: no reference
        raw = raw.reshape(0, 0)
    r = np.atleast_2d(raw)
    if r.ndim != 2:
        raise ExprsimError(f"references must be (R, D), got {r.shape}")
    if not np.isfinite(r).all():
        raise ExprsimError("reference embeddings hold NaN or infinite values (or None)")
    if isinstance(ref_names, str) or len(ref_names) != len(r):
        raise ExprsimError(
            f"one name per reference: {len(r)} references, "
            f"{'one string' if isinstance(ref_names, str) else len(ref_names)} names"
        )
    if len(r) and r.shape[1] == 0:
        raise ExprsimError(f"references of 0 values ({len(r)} of them)")
    if dim is not None and len(r) and r.shape[1] != dim:
        raise ExprsimError(f"references of {r.shape[1]} values, the model's embeddings of {dim}")
    return unit_rows(r, "reference embeddings") if r.size else r


#: face-reference distances :func:`match_tags` holds at once (float64: 32 MB; the whole
#: ``(N, R)`` matrix of 200,000 faces and 1,000 references had taken 4.7 GB)
MATCH_BLOCK = 1 << 22


def _per_name_distances(
    x: np.ndarray, r: np.ndarray, groups: Sequence[np.ndarray]
) -> Iterator[np.ndarray]:
    """``(rows, G)`` blocks of the distance of each row of ``x`` to the nearest reference
    of each group of rows of ``r`` (:func:`_exact_distances`), a block of faces at a time
    (:data:`MATCH_BLOCK`)."""
    uniq, inverse = np.unique(r, axis=0, return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1)
    step = max(1, MATCH_BLOCK // max(1, len(r)))  # the block is (rows, R) once expanded
    for start in range(0, len(x), step):
        d = _exact_distances(x[start : start + step], uniq)[:, inverse]
        yield np.stack([d[:, g].min(axis=1) for g in groups], axis=1)


def nearest_reference(embeddings: np.ndarray, references: np.ndarray) -> np.ndarray:
    """``(N,)`` distance of each of ``(N, D)`` unit embeddings to the nearest of ``(R, D)``
    references, as :func:`match_tags` measures it, a block of faces at a time."""
    x = real_array(embeddings, "the faces' embeddings", np.float64).reshape(len(embeddings), -1)
    r = real_array(references, "the references", np.float64)
    if len(x) == 0:
        return np.zeros(0)
    everyone = [np.arange(len(r))]
    return np.concatenate([block[:, 0] for block in _per_name_distances(x, r, everyone)])


#: squared distances under this are taken again directly (``sum (x - r)^2``): there the
#: expansion's rounding (about 1e-15) is not small beside the distance itself
_NEAR_SQUARED = 1e-8


def _exact_distances(x: np.ndarray, uniq: np.ndarray) -> np.ndarray:
    """``(N, U)`` Euclidean distances of float64 rows to distinct references ``uniq``
    (identical references are computed once, by the caller's ``np.unique``, so they are at
    exactly the same distance from every face and ties between tags break by name, not by
    rounding); a face at (almost) a reference's place is measured directly (a copy is at
    0, not 1e-8)."""
    from exprsim.distances import pairwise_squared_l2, squared_l2

    d2 = pairwise_squared_l2(x, uniq)
    rows, cols = np.nonzero(d2 < _NEAR_SQUARED)
    if len(rows):
        d2[rows, cols] = squared_l2(x[rows], uniq[cols])
    return np.sqrt(d2)


class Tagger:
    """Tag faces with user-defined expressions given by reference faces.

    Args:
        index: the :class:`~exprsim.index.store.FaceIndex` whose database stores the
            references (and, for :meth:`tag_index`, the faces to tag).
        embedder: the model (default: the index's embedder, i.e. ``exprsim.load_model()``).
        threshold: default distance threshold (``None``: the model's calibrated one).
    """

    def __init__(self, index: Any, embedder: Any = None, threshold: float | None = None):
        self.index = index
        self._embedder = embedder
        self._threshold = None if threshold is None else _check_threshold(threshold)

    @property
    def threshold(self) -> float:
        """The explicit threshold, else the model's calibrated one (:func:`model_threshold`)."""
        if self._threshold is not None:
            return self._threshold
        return model_threshold(self.embedder)

    @threshold.setter
    def threshold(self, value: float | None) -> None:
        self._threshold = None if value is None else _check_threshold(value)

    def index_threshold(self, threshold: float | None = None) -> float:
        """The threshold for the indexed faces and references: ``threshold``, else the
        explicit one, else the model's calibrated one, which fits only an index of that
        model's embeddings.

        Raises:
            ModelMismatchError: no threshold given, and the index holds embeddings of
                another model (an index made before an upgrade; the calibrated threshold of
                one model tagged 7 faces of another's where its own tagged 4).
        """
        if threshold is not None:
            return threshold
        if self._threshold is not None:
            return self._threshold
        self._refuse_other_model(
            "the index holds embeddings of {stored}, and the tag threshold calibrated for "
            "{model} does not fit them: give a threshold (--threshold; threshold= in the web "
            "API)"
        )
        return self.threshold

    def _refuse_other_model(self, message: str) -> None:
        """Raise :class:`~exprsim.index.store.ModelMismatchError` with ``message`` (its
        ``{stored}`` and ``{model}`` filled in) when the index holds embeddings of another
        model than the embedder's."""
        differ = index_mismatch(self.index, self.embedder)
        if differ is not None:
            from exprsim.index.store import REEMBED_HINT, ModelMismatchError

            raise ModelMismatchError(
                f"{message.format(stored=differ[0], model=differ[1])}; {REEMBED_HINT}"
            )

    @property
    def embedder(self) -> Any:
        return self._embedder if self._embedder is not None else self.index.embedder

    def _faces(
        self, image: Any, detector: Any = None, failures: list[Any] | None = None
    ) -> list[Any]:
        if _is_face(image):
            return [image]
        extra = {} if failures is None else {"failures": failures}
        return list(self.embedder.embed_images([image], detector=detector, **extra))

    def _all_faces(
        self, items: list[Any], detector: Any, failures: list[Any] | None, progress: bool
    ) -> Iterator[Any]:
        """The faces of ``items`` in input order, one at a time: the images embedded in one
        stream (the front-end threads at work, one progress bar), ``FaceEmbedding``
        objects as given."""
        if any(_is_face(im) for im in items):
            from exprsim.progress import progress_bar

            for im in progress_bar(items, enabled=progress, desc="tag", unit="img"):
                yield from self._faces(im, detector, failures)
            return
        from exprsim.models.embedder import faces_of

        yield from faces_of(self.embedder, items, detector, progress, failures)

    def add(
        self, name: str, image: Any, face: int | None = None, detector: Any = None
    ) -> TagReference:
        """Store face number ``face`` (largest first) of ``image`` as a reference for ``name``
        (``None``: the largest face that passes the quality check, else the largest:
        :func:`~exprsim.faces.pipeline.usable_face`).

        Args:
            name: the expression's name (:func:`~exprsim.index.store.check_new_tag_name`:
                no spaces around it, no control characters or ``,``, at most 64
                characters).
            image: a path, an image array or a ``FaceEmbedding``.
            face: the face's number, an int >= 0, or ``None``.

        Raises:
            ExprsimError: ``name`` breaks the rule above, or ``face`` is not an int >= 0,
                or faces carry ``name`` as a tag set by hand and no reference defines it
                yet (:meth:`FaceIndex.add_tag_reference`).
            ImageError: no such face in the image.
            ModelMismatchError: the database holds another model's embeddings.
        """
        check_new_tag_name(name)
        if face is not None and (
            isinstance(face, bool) or not isinstance(face, numbers.Integral) or face < 0
        ):
            raise ExprsimError(f"face must be an integer >= 0 or None, got {face!r}")
        faces = self._faces(image, detector)
        # stored and shown as text: a file name's undecodable bytes become \xe9 escapes
        src = printable(
            os.fsdecode(image)
            if isinstance(image, str | os.PathLike)
            else str(getattr(image, "source", "<array>"))
        )
        if face is None:
            from exprsim.faces.pipeline import usable_face

            face = usable_face(faces, src) if faces else 0
        face = int(face)
        if not 0 <= face < len(faces):
            raise ImageError(src, f"no face number {face} (found {count(len(faces), 'face')})")
        fe = faces[face]
        q = fe.aligned.quality
        if not q.ok:
            log.warning(
                "the reference face for %r fails the quality check (%s): faces will be "
                "matched against it all the same",
                printable(name),
                ", ".join(q.reasons) or "rejected",
            )
        ref_id = self.index.add_tag_reference(
            name, fe.embedding, self._model(), source=src, face_index=face,
            crop=fe.aligned.crop, model_digest=embedder_digest(self.embedder),
        )  # fmt: skip
        return TagReference(
            ref_id, name, src, np.asarray(fe.embedding, np.float32), fe.aligned.crop
        )

    def _model(self) -> str:
        return self.embedder.config.name_version

    def add_embedding(self, name: str, embedding: np.ndarray, model: str, source: str = "") -> int:
        """Store a reference embedding directly (``(16,)``) under ``name``.

        Raises:
            ExprsimError: ``name`` is not a non-empty string, or the embedding holds NaN
                or infinite values or is all zeros (it has no direction to match), or
                faces carry ``name`` as a tag set by hand and no reference defines it yet
                (:meth:`FaceIndex.add_tag_reference`).
        """
        # the store checks the name and the numbers (finite, not all zeros) before storing
        return self.index.add_tag_reference(name, embedding, model, source=source)

    def references(self) -> list[TagReference]:
        """Every stored reference, oldest first."""
        return [
            TagReference(r["id"], r["name"], r["source"], r["embedding"], r["crop"])
            for r in self.index.tag_references()
        ]

    def names(self) -> list[str]:
        """The tag names that have references."""
        return sorted({r.name for r in self.references()})

    def remove(self, name: str) -> int:
        """Delete the tag ``name``: its reference faces, and the name from the tags of the
        indexed faces (:meth:`untag`). Returns how many references were deleted. ``name``
        is the stored tag however its accents were typed (:meth:`stored_name`).

        Raises:
            ExprsimError: ``name`` is not a non-empty UTF-8 string.
        """
        stored = self.stored_name(name)
        n = int(self.index.delete_tag(stored)[0])  # one transaction
        if stored != name:  # faces tagged as typed by an earlier version, without references
            self.index.remove_tags([name])
        return n

    def untag(self, name: str) -> int:
        """Take the tag ``name`` (:meth:`stored_name`) off every indexed face; returns how
        many faces had it."""
        # as typed too: faces tagged by an earlier version, which kept names as typed
        return int(self.index.remove_tags(list(dict.fromkeys([self.stored_name(name), name]))))

    def stored_name(self, name: str) -> str:
        """The tag a user means by ``name``, as the CLI and the web app read it: a
        reference's name equal to it, else one equal once both are composed (``café`` typed
        with a combining accent is the ``café`` that :meth:`add` stored composed), else
        ``name`` composed (:func:`~exprsim.index.store.compose_tag_name`).

        Raises:
            ExprsimError: ``name`` is not a non-empty UTF-8 string.
        """
        from exprsim.index.store import compose_tag_name

        check_tag_name(name)
        return compose_tag_name(name, self.names())

    def _refs(self, refs: list[TagReference] | None = None) -> tuple[np.ndarray, list[str]]:
        refs = self.references() if refs is None else refs
        if not refs:
            raise ExprsimError(
                f"{self.index.path} holds no reference faces: add some with `exprsim tag add NAME IMAGE... --db DB`"
            )
        return np.stack([r.embedding for r in refs]), [r.name for r in refs]

    def tag_embeddings(
        self,
        embeddings: np.ndarray,
        threshold: float | None = None,
        references: list[TagReference] | None = None,
        distances: bool = True,
    ) -> list[tuple[tuple[str, ...], dict[str, float]]]:
        """Tags of ``(N, 16)`` embeddings (see :func:`match_tags`, and its ``distances``),
        against ``references`` (default: the stored ones, read now).

        Raises:
            ExprsimError: no references, NaN or infinite embeddings, or a NaN, infinite
                or negative threshold.
        """
        emb, names = self._refs(references)
        limit = self.threshold if threshold is None else threshold
        return match_tags(embeddings, emb, names, limit, distances=distances)

    def tag(
        self,
        images: Iterable[Any],
        threshold: float | None = None,
        detector: Any = None,
        failures: list[Any] | None = None,
        progress: bool = False,
        keep_on_interrupt: bool = False,
    ) -> TagResults:
        """Tag every face of every image (paths, arrays or ``FaceEmbedding`` objects; a
        folder: its images, walked as :func:`exprsim.io.iter_image_files` walks it; a
        file named twice, relative and absolute or in a folder given too, is read once).

        ``failures``: if given, unreadable images are skipped and their ``ImageError``
        appended. ``progress``: show a progress bar (on stderr) while the images are
        embedded. ``keep_on_interrupt``: a Ctrl-C stops the embedding and the faces done
        are tagged (:attr:`TagResults.interrupted` set); else it propagates.

        Raises:
            ExprsimError: no references, a NaN, infinite or negative threshold (before any
                image is read), or a face whose embedding is not finite.
        """
        threshold = _check_threshold(self.threshold if threshold is None else threshold)
        refs, names = self._refs()
        self._refuse_other_model("references were made with {stored}, the embedder is {model}")
        from exprsim.io import as_inputs, folders_walked, unique_inputs
        from exprsim.models.embedder import keep_faces
        from exprsim.report.html import MAX_GALLERY

        # a folder: its images; each file once (as the CLI reads them)
        inputs = list(unique_inputs(folders_walked(as_inputs(images))))
        faces = self._all_faces(inputs, detector, failures, progress)
        stop: list[BaseException] | None = [] if keep_on_interrupt else None
        kept, embeddings = keep_faces(faces, MAX_GALLERY, stop)
        out = TagResults()
        out.interrupted = bool(stop)
        if kept:
            matches = match_tags(np.stack(embeddings), refs, names, threshold)
            out.extend(
                TagResult(face.source, face.face_index, tags, dist, threshold, face.crop)
                for face, (tags, dist) in zip(kept, matches, strict=True)
            )
        return out

    def tag_index(self, threshold: float | None = None) -> int:
        """Recompute the reference-derived tags of every indexed face: each face loses the
        names of all current references, then gets the names it matches (so a stricter
        threshold or a changed reference takes stale tags away). Other tags (set by the
        user, not the name of any reference) stay. Returns how many faces got at least
        one tag.

        Raises:
            ExprsimError: no references, or a NaN, infinite or negative threshold.
            ModelMismatchError: no threshold given, and the index holds another model's
                embeddings (:meth:`index_threshold`).
        """
        from exprsim.index.store import TagReferencesChanged, tag_refs_digest

        threshold = self.index_threshold(threshold)
        for attempt in range(TAG_ATTEMPTS):
            # the references first, then the faces, each attempt: a re-embedding committed
            # between the two reads changes the references, which retag then sees; faces
            # read once before the loop were matched stale after a retry
            refs = self.references()
            ids, emb = self.index.embeddings()
            # checks everything before a change
            matches = self.tag_embeddings(emb, threshold, refs, distances=False)
            new = {int(fid): tags for fid, (tags, _) in zip(ids.tolist(), matches, strict=True)}
            names = {r.name for r in refs}
            try:  # one transaction, against the references matched: no face half-tagged
                used = tag_refs_digest((r.id, r.name, r.embedding) for r in refs)
                self.index.retag(new, names, references=used)
            except TagReferencesChanged:
                if attempt + 1 == TAG_ATTEMPTS:
                    raise
                log.info("the reference faces changed while tagging; matching again")
                continue
            return sum(bool(tags) for tags in new.values())
        raise AssertionError("unreachable")  # pragma: no cover


def _is_face(item: Any) -> bool:
    """An already embedded face (a ``FaceEmbedding``), not an image to read."""
    return hasattr(item, "embedding") and hasattr(item, "aligned")


# ----------------------------------------------------------------------------- calibration


@array_equality
@dataclass(frozen=True)
class TagCalibration:
    """Precision / recall of reference-face tagging as a function of the threshold.

    A (reference, candidate) pair is *predicted* a match when their distance is strictly
    below the threshold, and *is* a match when both faces share their label.

    Attributes:
        thresholds: ``(T,)`` thresholds.
        precision, recall, f1: ``(T,)``.
        n_references, n_candidates, n_pairs, positive_rate: sizes and base rate.
    """

    thresholds: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    n_references: int
    n_candidates: int
    n_pairs: int
    positive_rate: float
    description: str = ""
    current_threshold: float = DEFAULT_THRESHOLD

    def at(self, threshold: float) -> dict[str, float]:
        """Precision, recall and F1 at the grid threshold nearest to ``threshold``."""
        i = int(np.argmin(np.abs(self.thresholds - threshold)))
        return {
            "threshold": round(float(self.thresholds[i]), 6),  # 0.575, not 0.5750000000000001
            "precision": float(self.precision[i]),
            "recall": float(self.recall[i]),
            "f1": float(self.f1[i]),
        }

    @property
    def best_f1_threshold(self) -> float:
        return round(float(self.thresholds[int(np.argmax(self.f1))]), 6)

    def to_dict(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "n_references": self.n_references,
            "n_candidates": self.n_candidates,
            "n_pairs": self.n_pairs,
            "positive_rate": self.positive_rate,
            "at_default": self.at(self.current_threshold),
            "best_f1_threshold": self.best_f1_threshold,
        }

    def to_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame(
            {
                "threshold": self.thresholds,
                "precision": self.precision,
                "recall": self.recall,
                "f1": self.f1,
            }
        )

    def plot(self) -> bytes:
        """The curve as PNG bytes (see :func:`exprsim.report.plots.pr_curve`)."""
        from exprsim.report.plots import pr_curve

        return pr_curve(
            self.precision,
            self.recall,
            self.thresholds,
            mark=self.current_threshold,
            title=f"Reference-face tagging: precision/recall vs threshold ({self.n_pairs} pairs)",
        )


def _calibration_inputs(embeddings: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(N, D)`` finite float64 embeddings and ``(N,)`` labels without ``None`` or NaN (a
    NaN label is no class: each would count as a class of one face)."""
    try:
        x = real_array(embeddings, "the embeddings", np.float64)
    except (TypeError, ValueError) as exc:
        raise ExprsimError(f"embeddings must be (N, D) numbers ({exc})") from None
    y = np.asarray(labels)
    if x.ndim != 2 or y.ndim != 1 or len(x) != len(y):
        raise ExprsimError(
            f"calibration needs (N, D) embeddings and (N,) labels, got {x.shape} and {y.shape}"
        )
    if len(x) < 2:
        raise ExprsimError("calibration needs at least two labelled embeddings")
    if not np.isfinite(x).all():
        bad = int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0])
        raise ExprsimError(f"embeddings hold NaN or infinite values (row {bad})")
    missing = [i for i, v in enumerate(y.tolist()) if v is None or v != v]  # None, NaN
    if missing:
        raise ExprsimError(f"labels must name a class for every face; row {missing[0]} has none")
    try:
        np.unique(y)
    except TypeError:
        raise ExprsimError("labels must be of one kind (all numbers or all text)") from None
    return x, y


def _thresholds(thresholds: Any) -> np.ndarray:
    """The calibration grid: default ``0, 0.025, ..., 2``; else a non-empty 1-d list of
    finite numbers."""
    if thresholds is None:
        return np.linspace(0.0, 2.0, 81)
    try:
        t = np.asarray(thresholds, dtype=np.float64)
    except (TypeError, ValueError):
        t = np.zeros((0, 0))
    if t.ndim != 1 or not t.size or not np.isfinite(t).all():
        raise ExprsimError("thresholds must be a non-empty list of finite numbers")
    return t


def calibrate_threshold(
    embeddings: np.ndarray,
    labels: np.ndarray,
    refs_per_class: int = 20,
    thresholds: np.ndarray | None = None,
    seed: int = 0,
    description: str = "",
) -> TagCalibration:
    """Precision/recall of threshold tagging with single reference faces.

    ``refs_per_class`` faces of each class are drawn as references; every other face is a
    candidate for every reference.

    Args:
        embeddings: ``(N, D)`` L2-normalised embeddings.
        labels: ``(N,)`` class of each face.
        thresholds: grid (default ``0, 0.025, ..., 2``).

    Raises:
        ExprsimError: fewer than two labelled embeddings, or no class with two faces (a
            reference and a face to find): nothing to measure; embeddings that are not
            ``(N, D)`` finite numbers, labels that are not ``(N,)`` (or hold ``None`` or
            NaN), ``refs_per_class`` not a whole number >= 1, thresholds that are not a
            non-empty 1-d list of finite numbers.
    """
    from exprsim.distances import pairwise_l2
    from exprsim.errors import require_positive_int

    x, y = _calibration_inputs(embeddings, labels)
    refs_per_class = require_positive_int(refs_per_class, "refs_per_class")
    thresholds = _thresholds(thresholds)
    rng = np.random.default_rng(seed)
    refs = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if len(idx) >= 2:  # a class needs a face left over to be found
            refs.append(rng.choice(idx, min(refs_per_class, len(idx) - 1), replace=False))
    ref_idx = np.sort(np.concatenate(refs)) if refs else np.zeros(0, np.int64)
    cand = np.setdiff1d(np.arange(len(x)), ref_idx)
    tp = np.zeros(len(thresholds))
    pred = np.zeros(len(thresholds))
    n_pos = 0
    for start in range(0, len(ref_idx), 256):
        r = ref_idx[start : start + 256]
        d = np.asarray(pairwise_l2(x[r], x[cand], eps=0.0))
        pos = y[r][:, None] == y[cand][None, :]
        n_pos += int(pos.sum())
        dpos = np.sort(d[pos])
        dall = np.sort(d.ravel())
        tp += np.searchsorted(dpos, thresholds, side="left")
        pred += np.searchsorted(dall, thresholds, side="left")
    if n_pos == 0:
        raise ExprsimError(
            "calibration found no two faces of one class to pair (a reference and a face "
            "to find): nothing to measure; give more labelled faces"
        )
    precision = np.divide(tp, pred, out=np.ones_like(tp), where=pred > 0)
    recall = tp / n_pos
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    n_pairs = len(ref_idx) * len(cand)
    return TagCalibration(
        thresholds=thresholds,
        precision=precision,
        recall=recall,
        f1=f1,
        n_references=len(ref_idx),
        n_candidates=len(cand),
        n_pairs=n_pairs,
        positive_rate=n_pos / n_pairs if n_pairs else float("nan"),
        description=description,
    )


def calibrate_from_ferplus(
    embedder: Any = None,
    data_dir: str | Path | None = None,
    refs_per_class: int = 20,
    holdout_fraction: float = 0.05,
    seed: int = 0,
    progress: bool = False,
) -> TagCalibration:
    """:func:`calibrate_threshold` on the held-out part of FER+ Training (majority labels).

    The held-out faces are the same ones :func:`exprsim.apps.classify.build_reference_set`
    keeps aside to choose K (same fraction and seed), never PublicTest.
    """
    from exprsim.apps.classify import embed_fer, ferplus_holdout_split
    from exprsim.data.fer import load_ferplus

    if embedder is None:
        from exprsim.models.embedder import load_model

        embedder = load_model()
    train = load_ferplus("Training", data_dir, drop_duplicates_of="PublicTest")
    labels = train.majority
    _, held = ferplus_holdout_split(len(train), holdout_fraction, seed)
    emb = embed_fer(embedder, train.images[held], progress=progress)
    cal = calibrate_threshold(
        emb,
        labels[held],
        refs_per_class=refs_per_class,
        seed=seed,
        description=(
            f"FER+ Training held-out faces ({len(held)}), {refs_per_class} references per "
            f"class, model {embedder.config.name_version}"
        ),
    )
    return replace(cal, current_threshold=model_threshold(embedder))


def check_threshold_target(model: str | Path) -> Path:
    """The ``config.json`` :func:`save_tag_threshold` would write for ``model``, checked
    before any calibration: a model folder (not a shipped name) whose config is a
    writable file.

    Raises:
        ExprsimError: a shipped model (its threshold is the package's), or no writable
            ``config.json`` in the folder.
    """
    from exprsim.models.embedder import SHIPPED

    if str(model) in SHIPPED:
        raise ExprsimError(
            f"the shipped model {str(model)!r} keeps its own threshold: --save writes a model "
            "folder's config.json (give --model FOLDER)"
        )
    path = Path(model) / "config.json"
    if not path.is_file():
        raise ExprsimError(f"{printable(str(path))}: no such model config")
    if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
        raise ExprsimError(f"{printable(str(path))}: not writable, so no threshold can be saved")
    return path


def save_tag_threshold(model: str | Path, threshold: float, identity: str | None = None) -> Path:
    """Write ``threshold`` as ``tag_threshold`` into the model folder's ``config.json``
    (every other key kept; whole or not at all), so that tagging with that model uses it.
    Returns the config's path.

    ``identity``: the content digest of the model calibrated (``Embedder.digest``), or
    :func:`~exprsim.models.embedder.model_identity` of the folder when it was loaded; a
    folder whose weights or settings changed since (a training run or ``exprsim ensemble``
    exporting into it) is refused: the threshold belongs to the other model.

    Raises:
        ExprsimError: see :func:`check_threshold_target`; a config that is no JSON object;
            a threshold outside (0, 2]; the model changed since ``identity`` was taken.
    """
    import json

    from exprsim.io import write_json
    from exprsim.models.embedder import content_digest, model_identity
    from exprsim.models.identity import valid_digest

    path = check_threshold_target(model)
    if not (isinstance(threshold, numbers.Real) and 0 < threshold <= 2):
        raise ExprsimError(f"a tag threshold is a distance in (0, 2], got {threshold!r}")
    if valid_digest(identity):
        try:
            now = content_digest(model)
        except ExprsimError as exc:
            raise ExprsimError(f"{exc}; no threshold saved") from exc
    else:
        now = model_identity(model)
    if identity is not None and now != identity:
        raise ExprsimError(
            f"{printable(str(model))}: the model changed while it was calibrated (other "
            "weights or config now); no threshold saved: run the calibration again"
        )
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExprsimError(f"{printable(str(path))}: not a readable model config ({exc})") from exc
    if not isinstance(doc, dict) or "model" not in doc:
        raise ExprsimError(f"{printable(str(path))}: not a model config")
    doc["tag_threshold"] = round(float(threshold), 6)
    return write_json(path, doc)


def calibration_page(
    cal: TagCalibration, title: str = "Reference-face tagging: threshold calibration"
) -> Any:
    """HTML page of a :class:`TagCalibration`: the curve, the numbers at the model's
    threshold, then the whole table (``exprsim tag calibrate --html``)."""
    from exprsim.report.html import Page

    page = Page(title, subtitle=cal.description)
    page.image(
        cal.plot(),
        alt="precision, recall and F1 of the tag against the distance threshold; the "
        "numbers are in the tables below",
    )
    page.table([cal.to_dict()["at_default"]])
    page.table(cal.to_frame())
    return page


def tag_page(
    results: Sequence[TagResult],
    references: Sequence[TagReference],
    title: str = "Expression tags",
    threshold: float | None = None,
) -> Any:
    """HTML page: the reference faces, then every tagged face with its tags.

    ``threshold``: the one used (default: the results'; give it for a page without faces).
    """
    from exprsim.report.html import Page

    if threshold is None:
        threshold = results[0].threshold if results else DEFAULT_THRESHOLD
    page = Page(
        title,
        subtitle=f"threshold {threshold:g}; distances are Euclidean between embeddings (0 to 2)",
    )
    page.heading("Reference faces")
    page.gallery([r.crop for r in references], captions=[r.name for r in references], size=96)
    page.heading("Faces")
    shown = display_names([r.source for r in results])  # paths when two files share a name
    page.gallery(
        [r.crop for r in results],
        captions=[
            f"{name}#{r.face_index}: {', '.join(r.tags) or '-'}"
            for name, r in zip(shown, results, strict=True)
        ],
        size=96,
    )
    page.table(TagResults(results).to_frame())
    return page
