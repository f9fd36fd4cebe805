"""Compare a few faces: pairwise expression distances, and the odd one out of three.

The odd one out is the question FEC's raters answered for every triplet: of three faces,
which one's expression differs most? The two most alike faces are the pair at the
smallest distance; the third face is the odd one out.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from exprsim.equality import array_equality
from exprsim.errors import ExprsimError, printable, real_array

#: Most elements of the ``(rows, N, D)`` differences :func:`distance_matrix` holds at once
#: (32 MB of float64): the matrix of 20,000 faces had needed 48 GB on the way
DIFFERENCE_BLOCK = 1 << 22


def distance_matrix(embeddings: ArrayLike) -> np.ndarray:
    """Euclidean distances between all rows: ``(N, D) -> (N, N)`` float, exactly 0 on the
    diagonal (0 = same expression, 2 = opposite for unit embeddings).

    Computed from the differences (not the Gram matrix: no rounding for near-identical
    faces), a block of rows at a time: memory is the ``(N, N)`` result and
    :data:`DIFFERENCE_BLOCK` elements more. The embeddings are first scaled by a power of
    two (exact), so that values as small as 1e-170 or as large as 1e160 do not square to 0
    or infinity (in float64; the result keeps the embeddings' float type, float32 at least:
    float16 distances were up to 5e-4 off).

    Raises:
        ExprsimError: not ``(N, D)``, or a result larger than this machine's memory (said
            before any of it is computed).
    """
    from exprsim.distances import _real

    # integers in float64: uint8 differences wrap round
    e = _real(real_array(embeddings, "the distance matrix"))
    out = _scaled_distances(e, np.promote_types(e.dtype, np.float32), scale_back=True)[0]
    np.fill_diagonal(out, 0.0)  # exactly 0, a NaN row's too (its other distances are NaN)
    return out


def _scaled_distances(
    e: np.ndarray, dtype: Any = np.float64, scale_back: bool = False
) -> tuple[np.ndarray, int]:
    """``(N, N)`` distances of the rows of ``e`` in ``dtype``, scaled by ``2**-exponent``
    (exact; ``scale_back``: in the embeddings' own units), and that exponent: each block of
    rows is computed in float64 and stored in the result at once (no float64 copy of the
    whole matrix)."""
    from exprsim.clustering import power_of_two_scale

    if e.ndim != 2:
        raise ExprsimError(f"distances need (N, D) embeddings, got shape {e.shape}")
    n = len(e)
    _check_fits(n * n * np.dtype(dtype).itemsize, f"the distances between {n:,} faces")
    scaled, exponent = power_of_two_scale(e)
    rows = max(1, DIFFERENCE_BLOCK // max(1, n * e.shape[1]))
    out = np.empty((n, n), dtype=dtype)
    for start in range(0, n, rows):
        block = np.linalg.norm(scaled[start : start + rows, None] - scaled[None], axis=-1)
        out[start : start + rows] = np.ldexp(block, exponent) if scale_back else block
    return out, int(exponent[0])


def _check_fits(nbytes: int, what: str) -> None:
    """Refuse an array of ``nbytes`` larger than this machine's memory (Linux grants such
    an allocation and kills the process once it is written)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):  # pragma: no cover - not POSIX
        return
    if nbytes > total:
        raise ExprsimError(
            f"{what} would take {nbytes / 2**30:,.1f} GiB, more than this machine's "
            f"{total / 2**30:,.1f} GiB of memory; compare fewer faces at once"
        )


def odd_one_out(embeddings: ArrayLike) -> int:
    """Index (0, 1 or 2) of the face whose expression differs most, of ``(3, D)`` embeddings:
    the one left out of the closest pair (ties: the lower index).

    Raises:
        ExprsimError: not three rows, or NaN or infinite values.
    """
    e = real_array(embeddings, "the odd one out")
    if e.ndim != 2 or e.shape[0] != 3:
        raise ExprsimError(f"the odd one out needs (3, D) embeddings, got {e.shape}")
    if not np.isfinite(e).all():
        raise ExprsimError("the odd one out needs finite embeddings: they hold NaN or infinity")
    from exprsim.distances import _real

    d = _scaled_distances(_real(e))[0]  # compared scaled: at any scale, float32's too
    pair_d = [d[1, 2], d[0, 2], d[0, 1]]  # the pair that leaves out face 0, 1, 2
    return int(np.argmin(pair_d))


def display_names(sources: Sequence[str]) -> list[str]:
    """Names to show for ``sources`` (one per item; faces of one image share it): each
    file's name (``x.jpg``) when no two different sources share one, else the sources as
    given (``a/x.jpg``, ``b/x.jpg``); always printable (:func:`exprsim.errors.printable`:
    a newline as ``\\n``, an undecodable byte as ``\\xe9``)."""
    names = {s: Path(s).name for s in dict.fromkeys(str(s) for s in sources)}
    short = len(set(names.values())) == len(names)
    return [printable(names[str(s)] if short else str(s)) for s in sources]


def _has_name(item: Any) -> bool:
    """Whether ``item`` carries its own name: a path, or a ``(name, data)`` pair."""
    pair = isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)
    return pair or isinstance(item, str | os.PathLike)


def input_name(item: Any, position: int) -> str:
    """The name input number ``position`` (from 0) is reported under: a path as given, the
    name of a ``(name, data)`` pair, else ``"<bytes #i>"`` / ``"<array #i>"``, so that the
    odd one out or a face-less image among several in-memory ones can be told apart."""
    from exprsim.faces.stream import source_name

    return source_name(item, position)


@array_equality
@dataclass(frozen=True)
class Comparison:
    """Result of :func:`compare_images`.

    Attributes:
        sources: the images' names (see :func:`input_name`): paths as strings, the name
            of a ``(name, data)`` pair, ``"<bytes #i>"`` / ``"<array #i>"`` for the
            in-memory input at position ``i``.
        embeddings: ``(N, 16)`` float32, one face of each image (:func:`~exprsim.faces.pipeline.usable_face`).
        distances: ``(N, N)`` Euclidean distances between them.
        odd_one_out: index of the odd one out when ``N == 3`` (``None`` otherwise, and when
            no pair is closer than the others, as for three copies of one face).
    """

    sources: tuple[str, ...]
    embeddings: np.ndarray
    distances: np.ndarray
    odd_one_out: int | None

    def to_dict(self) -> dict[str, Any]:
        """``images``, ``distances`` (rounded to 1e-4) and, for three, ``odd_one_out``."""
        out: dict[str, Any] = {
            "images": list(self.sources),
            # in float64: float32 values rounded to 4 decimals print as 1.2127000093460083
            "distances": np.asarray(self.distances, np.float64).round(4).tolist(),
        }
        if self.odd_one_out is not None:
            out["odd_one_out"] = self.sources[self.odd_one_out]
        return out


def compare_images(images: Iterable[Any], embedder: Any = None, detector: Any = None) -> Comparison:
    """Embed one face of each image (the largest that passes the quality check, else the
    largest) and compare them.

    Args:
        images: two or more paths, encoded image bytes, ``(H, W, 3)`` uint8 RGB arrays or
            ``(name, data)`` pairs; each is reported under :func:`input_name`.
        embedder: the model (default: ``exprsim.load_model()``).
        detector: a detector name or instance (default: MediaPipe).

    Returns:
        A :class:`Comparison` (with the odd one out when there are three images).

    Raises:
        ExprsimError: fewer than two images, or an image without a face.
        ImageError: an image cannot be read.
    """
    from exprsim.faces.pipeline import usable_face
    from exprsim.io import as_inputs

    images = as_inputs(images)  # a generator is fine too
    if len(images) < 2:
        raise ExprsimError("compare needs at least two images")
    if embedder is None:
        from exprsim.models.embedder import load_model

        embedder = load_model()
    sources = tuple(input_name(im, i) for i, im in enumerate(images))
    embs = []
    for src, image in zip(sources, images, strict=True):
        # unnamed bytes / arrays travel as (name, data) pairs: a read error names them too
        named = image if _has_name(image) else (src, image)
        faces = embedder.embed_images([named], detector=detector)
        if not faces:
            raise ExprsimError(f"{src}: no face found")
        embs.append(faces[usable_face(faces, src)].embedding)
    e = np.stack(embs)
    odd = odd_one_out(e) if len(e) == 3 and _closest_pair_is_unique(e) else None
    return Comparison(sources, e, distance_matrix(e), odd)


def _closest_pair_is_unique(embeddings: np.ndarray, tol: float = 1e-6) -> bool:
    """Whether one pair of the three is closer than the others (three copies of one face,
    or an equilateral triple, have no odd one out)."""
    d = distance_matrix(embeddings)
    pair_d = np.sort([d[1, 2], d[0, 2], d[0, 1]])
    return bool(pair_d[1] - pair_d[0] > tol)
