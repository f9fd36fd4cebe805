"""Labelled face sets: the faces of image folders (or a FER+ split) with a class per face.

What :func:`exprsim.apps.subclasses.discover_subexpressions` (``exprsim subclasses``) needs:
embeddings, one class id per face, the class names, the crops to show and where each face
came from. Image faces are labelled by one of :data:`LABEL_METHODS`:

* ``"predict"``: the kNN emotion of the shipped FER+ reference set (it must have been made
  with the same model);
* ``"folder"``: the name of the folder holding the image (``happy/x.jpg`` -> ``happy``);
* ``"none"``: one class, ``"all"``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from exprsim.equality import array_equality
from exprsim.errors import ExprsimError, ModelError, require_positive_int

LABEL_METHODS: tuple[str, ...] = ("predict", "folder", "none")


@array_equality
@dataclass(frozen=True)
class LabelledFaces:
    """Faces with a class each.

    Attributes:
        embeddings: ``(N, 16)`` float32, L2-normalised.
        labels: ``(N,)`` int64 index into ``class_names``.
        class_names: the classes.
        crops: ``N`` uint8 crops (aligned faces, or FER's ``(48, 48)`` images).
        sources: ``N`` names (``"path#face"``, or ``"fer2013 row R"``).
    """

    embeddings: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    crops: list[np.ndarray]
    sources: list[str]

    def __len__(self) -> int:
        return len(self.labels)


def label_image_faces(
    paths: Iterable[str | Path],
    embedder: Any = None,
    labels: str = "predict",
    detector: Any = None,
    progress: bool = False,
    failures: list[Any] | None = None,
) -> LabelledFaces:
    """Embed every face of the images under ``paths`` and label it (see the module docstring).

    Args:
        paths: image files and/or folders (recursed); a file named twice is read once.
        embedder: the model (default: ``exprsim.load_model()``).
        labels: one of :data:`LABEL_METHODS`.
        detector: a detector name or instance (default: MediaPipe).
        progress: show a progress bar.
        failures: if given, unreadable images are skipped and their ``ImageError`` appended
            (else the first one is raised).

    Raises:
        ExprsimError: unknown ``labels``, no image files, or no faces.
        ImageError: an image cannot be read (only when ``failures`` is ``None``).
        ModelError: ``labels="predict"`` but the reference set belongs to another model.
    """
    from exprsim.io import iter_image_files, unique_files

    if labels not in LABEL_METHODS:
        raise ExprsimError(f"unknown labels {labels!r}; expected one of {', '.join(LABEL_METHODS)}")
    files = [str(f) for f in unique_files(iter_image_files(paths))]  # each file once
    if not files:
        raise ExprsimError("no image files found in the given paths")
    if embedder is None:
        from exprsim.models.embedder import load_model

        embedder = load_model()
    ref = check_labels(labels, embedder)  # before minutes of embedding, not after
    faces = embedder.embed_images(files, detector=detector, progress=progress, failures=failures)
    if not faces:
        raise ExprsimError("no faces found")
    emb = np.stack([f.embedding for f in faces]).astype(np.float32)
    if ref is not None:
        ids, names = _predicted(emb, ref)
    elif labels == "folder":
        # resolved: "a.jpg" or "../x.jpg" name their real folder, not "" or ".."
        parents = [Path(f.source).resolve().parent.name or "/" for f in faces]
        names = tuple(sorted(set(parents)))
        ids = np.array([names.index(p) for p in parents], np.int64)
    else:
        names, ids = ("all",), np.zeros(len(faces), np.int64)
    crops = [f.aligned.crop for f in faces]
    sources = [f"{f.source}#{f.face_index}" for f in faces]
    return LabelledFaces(emb, ids, names, crops, sources)


def check_labels(labels: str, embedder: Any) -> Any:
    """Check that ``labels`` can label ``embedder``'s faces: the shipped reference set (a
    ``ReferenceSet``) for ``"predict"``, ``None`` for the other methods.

    Raises:
        ExprsimError: unknown ``labels``.
        ModelError: ``"predict"`` with no reference set, or one made with another model.
    """
    if labels not in LABEL_METHODS:
        raise ExprsimError(f"unknown labels {labels!r}; expected one of {', '.join(LABEL_METHODS)}")
    if labels != "predict":
        return None
    from exprsim.apps.classify import load_reference_set

    ref = load_reference_set()
    differ = ref.mismatch(embedder)
    if differ is not None:
        raise ModelError(
            f"the kNN reference set was made with {differ[0]}, not {differ[1]}: use --labels "
            "folder or --labels none (labels='folder' or 'none' in Python)"
        )
    return ref


def _predicted(emb: np.ndarray, ref: Any) -> tuple[np.ndarray, tuple[str, ...]]:
    """kNN emotion ids ``(N,)`` int64 and the class names of the reference set ``ref``."""
    ids = ref.classifier().predict(emb)
    names = tuple(str(c) for c in ref.classes)
    if ids.dtype.kind not in "iu":  # class names -> ids
        ids = np.array([names.index(str(v)) for v in ids], np.int64)
    return ids, names


def ferplus_faces(
    split: str,
    embedder: Any = None,
    max_faces: int | None = None,
    seed: int = 0,
    data_dir: str | Path | None = None,
    progress: bool = False,
) -> LabelledFaces:
    """A FER+ split (or a seeded random subset of ``max_faces``) with its majority labels.

    Args:
        split: ``"Training"`` or ``"PublicTest"``.
        embedder: the model (default: ``exprsim.load_model()``).
        max_faces: keep a seeded random subset of this many faces (in row order).
        seed: the subset's seed.
        data_dir: FER folder (default: ``exprsim.data.fer.default_data_dir()``, i.e.
            ``$EXPRSIM_FER_DIR`` or ``shared/data/fer2013`` found beside the working folder).
        progress: show a progress bar.
    """
    from exprsim.apps.classify import embed_fer
    from exprsim.data.fer import FERPLUS_CLASSES, load_ferplus

    if max_faces is not None:  # before the data are read: 2.5 failed after, True gave 1
        max_faces = require_positive_int(max_faces, "max_faces")
    if embedder is None:
        from exprsim.models.embedder import load_model

        embedder = load_model()
    fer = load_ferplus(split, data_dir)
    idx = np.arange(len(fer))
    if max_faces and max_faces < len(fer):
        idx = np.sort(np.random.default_rng(seed).permutation(len(fer))[:max_faces])
    fer = fer.subset(idx)
    emb = embed_fer(embedder, fer.images, progress=progress)
    sources = [f"fer2013 row {int(r)}" for r in fer.rows]
    return LabelledFaces(emb, fer.majority, tuple(FERPLUS_CLASSES), list(fer.images), sources)
