"""The user-facing model API: :func:`load_model` and :class:`Embedder`.

An :class:`Embedder` is a network plus the frozen preprocessing it was trained with
(:class:`EmbedderConfig`, saved as ``config.json`` beside the weights), so inference can
never drift from training (timm's ``pretrained_cfg`` habit).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from numpy.typing import ArrayLike

from exprsim.equality import array_equality
from exprsim.errors import (
    ArgumentError,
    BackendUnavailableError,
    DownloadDisabledError,
    ImageError,
    ModelError,
    printable,
    require_positive_int,
)
from exprsim.faces.align import FER2013_TEMPLATE, AlignConfig, as_template
from exprsim.faces.types import AlignedFace

if TYPE_CHECKING:
    from exprsim.faces.reframe import Reframed

log = logging.getLogger(__name__)

#: Shipped models: name -> folder inside ``exprsim/models/weights``.
SHIPPED = {"default": "default"}
#: Input normalisations of :class:`PreprocessConfig`.
NORMALIZATIONS = ("fixed", "per_image")


def _require_finite(value: Any, where: str) -> None:
    """Raise ``ValueError`` naming ``where`` (``model_kwargs.readout_angle``, ...) when
    ``value``, or a number in it (dicts, lists and tuples searched through), is a NaN or
    infinite float; JSON's ``NaN`` and ``Infinity`` tokens read as such."""
    if isinstance(value, dict):
        for key, item in value.items():
            _require_finite(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _require_finite(item, f"{where}[{i}]")
    elif isinstance(value, float | np.floating) and not math.isfinite(value):
        raise ArgumentError(f"{where} is {value}: it must be a finite number")


@dataclass(frozen=True)
class PreprocessConfig:
    """How a face becomes a network input: alignment, resizing, normalisation.

    Saved in every model's ``config.json`` so that inference can never drift from training.

    Attributes:
        input_size: side of the square network input; crops are resized (area) to it.
        grayscale: convert RGB crops to gray (ITU-R 601 luma) as FER2013 is gray.
        normalize: ``"fixed"``: ``(x / 255 - mean) / std``; ``"per_image"``: each crop minus
            its own mean, divided by its own standard deviation + 1 (grey levels, 0..255).
        mean, std: the ``"fixed"`` normalisation (pixel values scaled to ``[0, 1]``).
        align_size: side of the aligned crop from :mod:`exprsim.faces.align` fed to the
            resizer when embedding whole images.
        template: the 5-point alignment template (normalised to the crop side).
        border: how the aligner fills pixels outside the image.
    """

    input_size: int = 48
    grayscale: bool = True
    mean: float = 0.5
    std: float = 0.25
    align_size: int = 112
    template: tuple[tuple[float, float], ...] = FER2013_TEMPLATE
    border: str = "constant"
    normalize: str = "fixed"

    def __post_init__(self) -> None:
        if self.normalize not in NORMALIZATIONS:
            raise ArgumentError(
                f"normalize must be one of {NORMALIZATIONS}, got {self.normalize!r}"
            )
        for name in ("mean", "std"):  # NaN or inf would make every network input NaN
            _require_finite(getattr(self, name), f"preprocess.{name}")
        if self.std <= 0:
            raise ArgumentError(f"preprocess.std must be > 0, got {self.std!r}")
        # a NumPy integer (np.int64(48)) is stored as int, so the config stays JSON
        for name in ("input_size", "align_size"):
            if isinstance(getattr(self, name), np.integer):
                object.__setattr__(self, name, int(getattr(self, name)))
        size = self.input_size
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 1024:
            raise ArgumentError(
                f"preprocess.input_size must be a whole number in [1, 1024], got {size!r}"
            )
        # the aligner's settings checked when the config is made, not by the first image
        # the trained model meets (a config trained to the end, then failed on every image)
        try:
            align = self.align_config()
        except ArgumentError as exc:
            raise ArgumentError(f"PreprocessConfig: {exc}") from exc
        object.__setattr__(self, "template", align.template)  # a tuple, as AlignConfig's

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PreprocessConfig:
        """From a ``config.json`` object, every field's type checked (``exprsim.config``).

        Raises:
            ValueError: unknown keys, or a value of the wrong type (``"input_size": 48.0``,
                ``"grayscale": "false"``).
        """
        from exprsim.config import from_dict

        d = dict(d)
        if "template" in d:
            d["template"] = as_template(d["template"])
        return from_dict(cls, d)

    def align_config(self) -> AlignConfig:
        """The :class:`~exprsim.faces.align.AlignConfig` that frames faces for this model."""
        return AlignConfig(size=self.align_size, template=self.template, border=self.border)


@dataclass(frozen=True)
class EmbedderConfig:
    """Everything needed to rebuild an embedder from its weights.

    Attributes:
        model: registry name (:func:`exprsim.models.registry.create_model`).
        embedding_dim: output dimension (16).
        preprocess: input preprocessing.
        version: model version string, stored with every indexed embedding.
        model_kwargs: extra keyword arguments for the registry builder.
        tag_threshold: distance below which reference-face tagging calls a match, calibrated
            for this model on held-out faces (``exprsim tag calibrate``); ``None``: the
            generic default of :mod:`exprsim.apps.tag`.
    """

    model: str
    embedding_dim: int = 16
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    version: str = "0"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    tag_threshold: float | None = None

    def __post_init__(self) -> None:
        """Refuse a NaN or infinite number among the settings (``model_kwargs`` searched
        through, e.g. ``readout_angle``): every embedding would be NaN.

        Raises:
            ValueError: naming the setting (``load_model`` turns it into a ModelError).
        """
        _require_finite(self.model_kwargs, "model_kwargs")
        if self.tag_threshold is not None:
            _require_finite(self.tag_threshold, "tag_threshold")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EmbedderConfig:
        """From a ``config.json`` object, every field's type checked (``exprsim.config``)."""
        from exprsim.config import from_dict

        d = dict(d)
        d["preprocess"] = asdict(PreprocessConfig.from_dict(d.get("preprocess", {})))
        return from_dict(cls, d)

    @property
    def name_version(self) -> str:
        return f"{self.model}@{self.version}"


@array_equality
@dataclass(frozen=True)
class FaceEmbedding:
    """One face in one image, with its expression embedding.

    Attributes:
        source: file path (or ``"<array>"``) of the image.
        face_index: index of the face within its image (largest first).
        aligned: detection, aligned crop and quality.
        embedding: ``(16,)`` float32, L2-normalised.
    """

    source: str
    face_index: int
    aligned: AlignedFace
    embedding: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        q = self.aligned.quality
        row: dict[str, Any] = {"source": self.source, "face": self.face_index}
        row.update(self.aligned.face.to_dict())
        row.update(sharpness=q.sharpness, yaw=q.yaw, pitch=q.pitch, roll=q.roll, quality_ok=q.ok)
        row["reasons"] = ",".join(q.reasons)  # as the tables write them
        row.update({f"e{i}": float(v) for i, v in enumerate(self.embedding)})
        return row


@dataclass(frozen=True)
class ImageEmbeddings:
    """The embedded faces of one input image (:meth:`Embedder.embed_stream`).

    Attributes:
        index: position of the input in the stream.
        source: file name (or ``"<bytes>"`` / ``"<array>"``).
        faces: one :class:`FaceEmbedding` per face, largest first.
        error: why the image could not be read, else ``None``.
    """

    index: int
    source: str
    faces: tuple[FaceEmbedding, ...] = ()
    error: ImageError | None = None


def resolve_device(device: str) -> Any:
    """``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` as a ``torch.device`` (inference and
    training alike).

    Raises:
        ModelError: not a device name, or CUDA asked for where there is none.
    """
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    wanted = "device must be 'cpu', 'cuda', 'cuda:N' or 'auto'"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ModelError(f"{wanted}, got {device!r}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device {device!r}: this PyTorch sees no CUDA GPU (use 'cpu' or 'auto')")
    if dev.type not in ("cpu", "cuda"):
        raise ModelError(f"{wanted}, got {device!r}")
    return dev


def _crop_array(crops: Any) -> np.ndarray:
    """``crops`` as an array of crops; no crops at all (``[]``) is ``(0, 0, 0)``.

    Raises:
        ModelError: not an ``(N, H, W)`` / ``(N, H, W, C)`` array of numbers.
    """
    from exprsim.io import looks_like_one_colour_crop

    try:
        arr = np.asarray(crops)
    except (ValueError, TypeError) as exc:  # ragged lists
        raise ModelError(f"crops must be one (N, H, W) or (N, H, W, 3) array ({exc})") from exc
    if arr.ndim == 1 and arr.shape[0] == 0:
        return np.zeros((0, 0, 0), np.uint8)
    if arr.ndim not in (3, 4) or arr.dtype.kind not in "biuf":
        raise ModelError(
            f"crops must be a uint8 (N, H, W) or (N, H, W, 3) array, got {type(crops).__name__} "
            f"of shape {arr.shape} and dtype {arr.dtype}"
        )
    if looks_like_one_colour_crop(arr):
        # read as N gray crops 3 pixels wide, this would embed every row of one colour crop
        raise ModelError(
            f"crops of shape {arr.shape} look like one (H, W, {arr.shape[2]}) colour crop: "
            "pass a batch, crop[None] or [crop]"
        )
    return arr


def at_align_size(crops: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """A uint8 batch of crops with those larger than
    :data:`~exprsim.faces.reframe.MAX_UNTOUCHED_SIDE` brought to ``cfg.align_size`` (area
    averaging), as :func:`~exprsim.faces.reframe.reframe_crops` brings the crops it keeps:
    every crop reaches the network through the aligned crop's side, as a detected face
    does. Twelve faces aligned at 224 px and taken straight to 48 px were up to 0.041
    (median 0.014) from their own faces' embeddings; through 112 px, up to 0.018 (0.007).
    Smaller crops (FER2013's 48 px), crops already at that side and batches
    :func:`resize_crops` refuses are given back as they are."""
    import cv2

    arr = np.asarray(crops)
    side = cfg.align_size
    if not _looked_at(arr) or arr.shape[1:3] == (side, side):
        return arr
    out = np.empty((arr.shape[0], side, side, *arr.shape[3:]), np.uint8)
    for i, im in enumerate(arr):
        out[i] = cv2.resize(im, (side, side), interpolation=cv2.INTER_AREA).reshape(out.shape[1:])
    return out


def _looked_at(arr: np.ndarray) -> bool:
    """Whether ``arr`` is a non-empty uint8 ``(N, H, W)`` / ``(N, H, W, 1|3)`` batch of
    crops larger than :data:`~exprsim.faces.reframe.MAX_UNTOUCHED_SIDE`: crops brought to
    the aligned side (:func:`at_align_size`), and re-framed when asked. Anything else goes
    to :func:`resize_crops` as it is (which refuses what it cannot take)."""
    from exprsim.faces.reframe import MAX_UNTOUCHED_SIDE

    shape_ok = arr.ndim == 3 or (arr.ndim == 4 and arr.shape[3] in (1, 3))
    return (
        arr.dtype == np.uint8
        and shape_ok
        and arr.shape[0] > 0
        and min(arr.shape[1], arr.shape[2]) > 0
        and max(arr.shape[1], arr.shape[2]) > MAX_UNTOUCHED_SIDE
    )


def resize_crops(crops: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """uint8 crops ``(N, H, W)`` or ``(N, H, W, 3)`` -> float32 ``(N, C, S, S)`` in grey levels.

    Colour conversion and resizing only (values stay in ``0..255``); :func:`normalize_input`
    finishes the network input. Training calls the two with augmentation in between.
    """
    import cv2

    arr = np.asarray(crops)
    if arr.dtype != np.uint8:
        raise ModelError(f"crops must be uint8, got {arr.dtype}")
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3) or arr.shape[1] == 0 or arr.shape[2] == 0:
        raise ModelError(f"crops must be (N, H, W) or (N, H, W, 3), got {np.shape(crops)}")
    s = cfg.input_size
    out_c = 1 if cfg.grayscale else 3
    if arr.shape[1:] == (s, s, out_c):  # already network-sized: one vectorised copy
        return np.ascontiguousarray(np.transpose(arr, (0, 3, 1, 2)), dtype=np.float32)
    out = np.empty((arr.shape[0], out_c, s, s), dtype=np.float32)
    for i, im in enumerate(arr):
        if cfg.grayscale and im.shape[-1] == 3:
            im = cv2.cvtColor(im, cv2.COLOR_RGB2GRAY)[..., None]
        elif not cfg.grayscale and im.shape[-1] == 1:
            im = np.repeat(im, 3, axis=-1)
        if im.shape[0] != s or im.shape[1] != s:
            interp = cv2.INTER_AREA if im.shape[0] > s else cv2.INTER_LINEAR
            im = cv2.resize(im, (s, s), interpolation=interp)
            if im.ndim == 2:
                im = im[..., None]
        out[i] = np.transpose(im, (2, 0, 1))
    return out


def normalize_input(x: Any, cfg: PreprocessConfig) -> Any:
    """Grey-level float tensor ``(N, C, S, S)`` (torch) -> normalised network input, same shape.

    The one normalisation shared by training, evaluation and :class:`Embedder`.
    """
    if cfg.normalize == "per_image":
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        std = x.std(dim=(1, 2, 3), keepdim=True)
        return (x - mean) / (std + 1.0)
    return (x * (1.0 / 255.0) - cfg.mean) * (1.0 / cfg.std)


def preprocess_crops(crops: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """uint8 crops ``(N, H, W)`` or ``(N, H, W, 3)`` -> float32 ``(N, C, S, S)`` network input."""
    import torch

    x = torch.from_numpy(resize_crops(crops, cfg))
    return np.ascontiguousarray(normalize_input(x, cfg).numpy(), dtype=np.float32)


class NoClassifierError(ModelError, ValueError):
    """The model has no emotion classifier of its own (:meth:`Embedder.embed_with_proba`);
    also a ``ValueError``, what that method raised before."""


_fork_hook = False
_warned_no_detector = False


def _one_torch_thread_after_fork() -> None:
    """In a forked child: one torch CPU thread (the parent's OpenMP workers are not there,
    and a parallel region waiting for them hangs for ever)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


def _register_fork_hook() -> None:
    """Once per process, when the first :class:`Embedder` is built (never on import)."""
    global _fork_hook
    if not _fork_hook and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_one_torch_thread_after_fork)
        _fork_hook = True


class Embedder:
    """Expression embedder: network + frozen preprocessing config.

    Threads and processes: several threads may use one embedder at once (the network only
    reads its weights; for the front end see :meth:`embed_images`). A process forked after
    the first embedder was built (``multiprocessing``'s ``"fork"`` start method on Linux,
    gunicorn ``--preload``) runs torch with one CPU thread: a forked child cannot use the
    parent's OpenMP thread pool and would otherwise hang in its first forward pass. Call
    ``torch.set_num_threads`` in the child to choose otherwise, or start processes with
    ``"spawn"``.

    Args:
        model: a ``torch.nn.Module`` returning ``(N, D)`` L2-normalised embeddings.
        config: the config the weights were trained with.
        batch_size: crops per forward pass.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        digest: :func:`content_digest` of the weights and settings, when known.
    """

    def __init__(
        self,
        model: Any,
        config: EmbedderConfig,
        batch_size: int = 64,
        device: str = "cpu",
        digest: str | None = None,
    ) -> None:
        import torch

        #: :func:`content_digest` of the folder it was loaded from (:func:`load_model` sets
        #: it); ``None`` for an embedder built by hand, whose embeddings are then told from
        #: other models' by ``name@version`` alone
        self.digest = digest
        self.batch_size = batch_size
        _register_fork_hook()
        self.device = resolve_device(device)
        # channels-last: ~1.5x faster CPU convolutions (oneDNN); same results to float rounding
        self.model = model.to(self.device, memory_format=torch.channels_last).eval()
        self.config = config

    @property
    def batch_size(self) -> int:
        """Crops per forward pass (a whole number >= 1, checked when set)."""
        return self._batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        # set after construction too (``model.batch_size = 0`` was range()'s raw error)
        self._batch_size = require_positive_int(value, "batch_size", ModelError)

    @property
    def embedding_dim(self) -> int:
        return self.config.embedding_dim

    def embed_crops(self, crops: ArrayLike, *, reframe: bool = True) -> np.ndarray:
        """Embed face crops, one face each.

        Crops framed like FER2013 (exprsim's aligned crops, FER2013's 48 px faces, tight
        face boxes) are embedded as they are. With ``reframe`` (the default), a crop
        larger than 64 px that is framed looser than FER2013's (hair, neck, background
        around the face: crops cut by another tool or lab) is first framed again by the
        default detector and the model's own alignment (:mod:`exprsim.faces.reframe`,
        about 3.5 ms a crop); the others, and crops without a face found in them, are
        embedded as they are, brought to the aligned crop's side first (area averaging),
        so that every crop of a batch is resampled alike. Crops of at most 64 px are never
        looked at.

        Args:
            crops: uint8 ``(N, H, W)`` gray or ``(N, H, W, 3)`` RGB, any H, W.
            reframe: ``False`` embeds every crop as it is (crops exprsim aligned itself:
                no detector is run), resampled as above: a crop larger than 64 px is
                brought to the aligned crop's side first, so ``exprsim faces --crops
                --size 224`` crops are embedded as the 112 px ones (and as ``reframe=True``
                embeds crops it leaves alone).

        Returns:
            ``(N, 16)`` float32, rows L2-normalised. Deterministic; no gradient.
        """
        import torch

        arr = self._network_crops(crops, reframe)
        if arr.shape[0] == 0:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        with torch.inference_mode():
            outs = [self.model(t).float().cpu().numpy() for t in self._inputs(arr)]
        emb = np.concatenate(outs, axis=0).astype(np.float32)
        emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        return emb

    def emotion_proba(self, crops: ArrayLike, *, reframe: bool = True) -> np.ndarray | None:
        """The network's own FER+ emotion distribution per crop, if it has a classifier.

        Args:
            crops, reframe: as :meth:`embed_crops`.

        Returns:
            ``(N, 8)`` float32 rows summing to 1 (FER+ class order), or ``None`` for a model
            without an emotion head.
        """
        import torch

        if not hasattr(self.model, "parts"):
            _crop_array(crops)  # a bad batch is refused alike, classifier or not
            return None
        arr = self._network_crops(crops, reframe)
        with torch.inference_mode():
            outs = [self.model.parts(t)[1].float().cpu().numpy() for t in self._inputs(arr)]
        return np.concatenate(outs).astype(np.float32) if outs else np.zeros((0, 8), np.float32)

    def embed_with_proba(
        self, crops: ArrayLike, *, reframe: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`embed_crops` and :meth:`emotion_proba` of the same crops in one pass of
        the network (a model with its own classifier only).

        Args:
            crops, reframe: as :meth:`embed_crops`.

        Returns:
            ``(N, 16)`` unit rows and ``(N, 8)`` distributions, float32.

        Raises:
            NoClassifierError: a :class:`~exprsim.errors.ModelError` (and ``ValueError``):
                the model has no emotion classifier (:meth:`emotion_proba` returns
                ``None`` for it).
            ModelError: ``crops`` is not a batch of crops.
        """
        import torch

        if not hasattr(self.model, "parts"):
            raise NoClassifierError(
                f"model {self.config.name_version} has no emotion classifier: "
                "embed_with_proba needs one (emotion_proba returns None for it)"
            )
        zs, ps = [], []
        with torch.inference_mode():
            for t in self._inputs(self._network_crops(crops, reframe)):
                e, p = self.model.parts(t)
                zs.append(self.model.readout_from(e, p).float().cpu().numpy())
                ps.append(p.float().cpu().numpy())
        if not zs:
            return np.zeros((0, self.embedding_dim), np.float32), np.zeros((0, 8), np.float32)
        z = np.concatenate(zs).astype(np.float32)
        z /= np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
        return z, np.concatenate(ps).astype(np.float32)

    def _network_crops(self, crops: ArrayLike, reframe: bool) -> np.ndarray:
        """The crops the network gets: with ``reframe`` and crops larger than 64 px,
        :func:`~exprsim.faces.reframe.reframe_crops`' (the loose ones cut again, all of them
        at the aligned crop's side); else ``crops`` as a batch, those larger than 64 px at
        the aligned crop's side too (:func:`at_align_size`)."""
        if not isinstance(reframe, bool | np.bool_):
            raise ArgumentError(f"reframe must be True or False, got {reframe!r}")
        arr = _crop_array(crops)
        done = self._reframed(arr) if reframe else None
        return at_align_size(arr, self.config.preprocess) if done is None else done.crops

    def _reframed(self, arr: np.ndarray) -> Reframed | None:
        """:func:`~exprsim.faces.reframe.reframe_crops` of a valid batch that may need it;
        ``None`` when nothing is to be looked at (small crops, or a batch the network's
        preprocessing refuses: that error is raised as before) or the detector is missing."""
        from exprsim.faces.reframe import reframe_crops

        if not _looked_at(arr):
            return None
        try:
            return reframe_crops(arr, self.config.preprocess.align_config())
        except BackendUnavailableError as exc:
            global _warned_no_detector
            if not _warned_no_detector:
                log.warning("crops are embedded as they are, without re-framing: %s", exc)
                _warned_no_detector = True
            return None

    def _inputs(self, crops: np.ndarray) -> Iterator[Any]:
        """Network input batches ``(B, C, S, S)`` of ``crops`` (the shared preprocessing)."""
        import torch

        arr = _crop_array(crops)
        pre = self.config.preprocess
        for start in range(0, arr.shape[0], self.batch_size):
            raw = resize_crops(arr[start : start + self.batch_size], pre)
            t = normalize_input(torch.from_numpy(raw).to(self.device), pre)
            yield t.contiguous(memory_format=torch.channels_last)

    def embed_stream(
        self,
        images_or_paths: Iterable[Any],
        detector: Any = None,
        workers: int | None = None,
    ) -> Iterator[ImageEmbeddings]:
        """Detect, align and embed the faces of a stream of images, one result per image.

        The front-end runs ``workers`` images at a time
        (:func:`exprsim.faces.stream.analyze_stream`); crops are embedded in batches of
        ``batch_size`` across images, and each image is yielded, in input order, once its
        faces are embedded. Memory stays bounded for any number of inputs.

        Args:
            images_or_paths: paths, encoded bytes, ``(H, W, 3)`` uint8 RGB arrays, or
                ``(name, data)`` pairs (read lazily).
            detector: a detector name (each worker thread gets its own instance), an
                instance (used in the calling thread only), or ``None`` (the default).
            workers: front-end threads (default: up to 2, the cores here).

        Yields:
            One :class:`ImageEmbeddings` per input; an unreadable input has ``error`` set
            and no faces.
        """
        import time

        from exprsim.faces.stream import analyze_stream

        align_cfg = self.config.preprocess.align_config()
        waiting: list[Any] = []
        n_crops, since = 0, time.monotonic()
        try:
            for item in analyze_stream(images_or_paths, detector, align_cfg, workers=workers):
                if not waiting:
                    since = time.monotonic()
                waiting.append(item)
                n_crops += len(item.faces)
                # a full batch, or images that have waited a while (slow images, faceless
                # ones): the progress moves, and a Ctrl-C loses little
                if n_crops >= self.batch_size or time.monotonic() - since >= STREAM_WAIT_S:
                    batch, waiting, n_crops = waiting, [], 0
                    yield from self._embed_waiting(batch)
        except KeyboardInterrupt:  # the images analysed so far are embedded and handed on
            batch, waiting = waiting, []
            yield from self._embed_waiting(batch)
            raise
        yield from self._embed_waiting(waiting)

    def _embed_waiting(self, waiting: list[Any]) -> Iterator[ImageEmbeddings]:
        crops = [af.crop for item in waiting for af in item.faces]
        emb = (
            self.embed_crops(np.stack(crops), reframe=False)
            if crops
            else np.zeros((0, self.embedding_dim))
        )
        k = 0
        for item in waiting:
            faces = []
            for j, af in enumerate(item.faces):
                faces.append(FaceEmbedding(item.source, j, af, emb[k]))
                k += 1
            yield ImageEmbeddings(item.index, item.source, tuple(faces), item.error)

    def embed_images(
        self,
        images_or_paths: Iterable[Any],
        detector: Any = None,
        progress: bool = False,
        failures: list[ImageError] | None = None,
        workers: int | None = None,
    ) -> list[FaceEmbedding]:
        """Detect, align and embed every face of every image.

        Args:
            images_or_paths: paths, encoded bytes or ``(H, W, 3)`` uint8 RGB arrays (one
                of them alone is one input).
            detector: a detector name or instance (default: MediaPipe); a name gives each
                worker thread its own instance, an instance runs in the calling thread.
            progress: show a progress bar.
            failures: if given, an input that cannot be read is skipped and its
                :class:`~exprsim.errors.ImageError` appended here instead of stopping the
                whole job (the caller reports them).
            workers: front-end threads (see :meth:`embed_stream`).

        Returns:
            One :class:`FaceEmbedding` per face, in input order then largest first (all of
            them at once, crops included: about 38 KB a face; :meth:`iter_faces` hands
            them on one image at a time).

        Raises:
            ImageError: an input cannot be read (only when ``failures`` is ``None``).

        Thread safety: several threads may call this on one embedder at once, with a
        detector name or ``None``, and get the answers of one call after the other. A
        call on several images runs them on the front end's worker threads, each with
        its own detector (:func:`exprsim.faces.stream.shutdown_workers` hands the threads
        back); a call on one image uses the process's shared detector, which threads take
        turns on. A detector *instance* runs in the calling thread and is not
        thread-safe: never pass one instance from several threads at once.
        """
        return list(self.iter_faces(images_or_paths, detector, progress, failures, workers))

    def iter_faces(
        self,
        images_or_paths: Iterable[Any],
        detector: Any = None,
        progress: bool = False,
        failures: list[ImageError] | None = None,
        workers: int | None = None,
    ) -> Iterator[FaceEmbedding]:
        """:meth:`embed_images`, one face at a time: what a caller does not keep (a crop
        it will not show) is freed as it goes, so memory does not grow with the album.

        Yields:
            One :class:`FaceEmbedding` per face, in input order then largest first.

        Raises:
            ImageError: an input cannot be read (only when ``failures`` is ``None``), when
                the iteration reaches it.
        """
        from exprsim.io import folders_walked, input_stream
        from exprsim.progress import progress_bar

        # a generator is read as it goes (video frames are not all held), and a folder
        # stands for its images, as in embed_files
        items, total = input_stream(images_or_paths)
        if total is not None:
            items = list(folders_walked(items))
            total = len(items)
            if total <= 1:
                workers = 1  # one image: no second detector to build
        else:
            items = folders_walked(items)
        stream = self.embed_stream(items, detector, workers)
        for item in progress_bar(stream, enabled=progress, total=total, desc="embed", unit="img"):
            if item.error is not None:
                if failures is None:
                    raise item.error
                failures.append(item.error)
                log.debug("skipped %s", item.error)
            yield from item.faces


def faces_of(
    embedder: Any,
    images: Iterable[Any],
    detector: Any = None,
    progress: bool = False,
    failures: list[ImageError] | None = None,
) -> Iterator[FaceEmbedding]:
    """The faces of ``images``, one at a time: ``embedder.iter_faces`` when it has one
    (:class:`Embedder`), else its ``embed_images`` list (any object that has one)."""
    kw: dict[str, Any] = {"detector": detector, "progress": progress}
    if failures is not None:  # an embedder of the caller's own may not take it
        kw["failures"] = failures
    iterate = getattr(embedder, "iter_faces", None)
    if iterate is not None:
        return iter(iterate(images, **kw))
    return iter(embedder.embed_images(images, **kw))


@array_equality
@dataclass(frozen=True)
class KeptFace:
    """What a result row needs of one face, without its embedding (:func:`keep_faces`).

    Attributes:
        source, face_index: as in :class:`FaceEmbedding`.
        quality_ok: the face passed the quality check.
        crop: its aligned crop, or ``None`` beyond the first faces whose crops are kept.
    """

    source: str
    face_index: int
    quality_ok: bool
    crop: np.ndarray | None


_T = TypeVar("_T")


def keep_faces(
    faces: Iterable[FaceEmbedding],
    crops: int,
    interrupted: list[BaseException] | None = None,
) -> tuple[list[KeptFace], list[np.ndarray]]:
    """Each face's row and ``(D,)`` embedding, with a crop only for the first ``crops``
    faces (the ones a page shows): the rest are freed as they go.

    ``interrupted``: if given, a Ctrl-C (``KeyboardInterrupt``) stops the faces, is
    appended to it, and the faces done are returned (else it propagates)."""

    def keep(i: int, f: FaceEmbedding) -> tuple[KeptFace, np.ndarray]:
        crop = f.aligned.crop if i < crops else None
        return KeptFace(f.source, f.face_index, bool(f.aligned.quality.ok), crop), f.embedding

    rows = collect_faces(faces, keep, interrupted)
    return [k for k, _ in rows], [e for _, e in rows]


def collect_faces(
    faces: Iterable[FaceEmbedding],
    keep: Callable[[int, FaceEmbedding], _T],
    interrupted: list[BaseException] | None = None,
) -> list[_T]:
    """``keep(i, face)`` of each face, in order (``i``: how many were kept before).

    ``interrupted``: if given, a Ctrl-C (``KeyboardInterrupt``) stops the faces (the stream
    is closed: its front-end threads stop), is appended to it, and what was kept is
    returned; else it propagates."""
    out: list[_T] = []
    try:
        for f in faces:
            out.append(keep(len(out), f))
    except KeyboardInterrupt as exc:
        if interrupted is None:
            raise
        interrupted.append(exc)
        close = getattr(faces, "close", None)
        if close is not None:
            close()
    return out


def _weights_dir(name: str) -> Path:
    return Path(str(resources.files("exprsim.models") / "weights" / SHIPPED[name]))


def _is_file(path: Path) -> bool:
    """``path.is_file()``, false for a name the file system refuses (too long, say)."""
    try:
        return path.is_file()
    except OSError:
        return False


#: seconds an analysed image waits for a full batch in :meth:`Embedder.embed_stream`
STREAM_WAIT_S = 1.0


#: largest ``config.json`` read (a real one is about 1 KB; a 1 GB one took 2.3 GB)
MAX_CONFIG_BYTES = 1 << 20


def _read_config(path: Path) -> EmbedderConfig:
    """``config.json`` of a checkpoint folder, or one clear :class:`ModelError`."""
    if not _is_file(path):  # a FIFO would be waited on for ever
        raise ModelError(f"{path}: not a file, so not a model config")
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ModelError(f"{path}: over {MAX_CONFIG_BYTES:,} bytes: not a model config")
        doc = json.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ModelError(f"{path}: not a readable JSON model config ({exc})") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("model"), str):
        raise ModelError(f'{path}: a model config is a JSON object with a "model" name')
    try:
        return EmbedderConfig.from_dict(doc)
    except (TypeError, ValueError, AttributeError) as exc:
        raise ModelError(f"{path}: invalid model config ({exc})") from exc


def model_identity(model: str | Path) -> str:
    """What a model's embeddings are tagged with where a name is not enough: its
    ``name@version`` and a digest of its ``model.safetensors`` (two trained folders may
    share a name and version), read from the files without loading the network; the name
    as given when they do not read (loading it then says why)."""
    import hashlib

    folder = _weights_dir(str(model)) if str(model) in SHIPPED else Path(model)
    try:
        if not _is_file(folder / "model.safetensors"):  # a FIFO hung `tag calibrate --save`
            return str(model)
        name = _read_config(folder / "config.json").name_version
        with open(folder / "model.safetensors", "rb") as fh:
            digest = hashlib.file_digest(fh, "sha1").hexdigest()
    except (ModelError, OSError):
        return str(model)
    return f"{name} (weights {digest[:12]})"


def content_digest(model: str | os.PathLike[str]) -> str:
    """A digest of what a model's embeddings depend on: its weights and its settings
    (``config.json`` but for its version and tag threshold), ``"sha256:"`` and 16 hex
    digits. Two folders that share a ``name@version`` with other weights or settings (a
    fine-tune saved under the shipped name, two ``exprsim train`` runs that both default to
    version 1) have different digests; a copy of a folder, or one whose version or tag
    threshold alone changed, has the same. Indexes, kNN reference sets and tag references
    record it beside the ``name@version`` (:attr:`Embedder.digest`).

    Raises:
        ModelError: the folder holds no model, or its files do not read.
    """
    folder = check_model_files(model)
    return _content_digest(_read_config(folder / "config.json"), folder / "model.safetensors")


#: weights digests by (path, device, inode, size, modification time): a command loads a
#: model once, a test suite or a server many times
_WEIGHTS_DIGESTS: dict[tuple[str, int, int, int, int], str] = {}


def _content_digest(config: EmbedderConfig, weights: Path) -> str:
    """:func:`content_digest` of ``config`` and the weights file ``weights`` (8 ms for the
    shipped model's 9 MB, once per file and process)."""
    import hashlib

    try:
        st = os.stat(weights)
        key = (os.path.abspath(weights), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        digest = _WEIGHTS_DIGESTS.get(key)
        if digest is None:
            with open(weights, "rb") as fh:
                digest = hashlib.file_digest(fh, "sha256").hexdigest()
            _WEIGHTS_DIGESTS[key] = digest
    except OSError as exc:
        raise ModelError(f"{printable(str(weights))}: cannot read it ({exc})") from exc
    return _digest_of(config, digest)


def _digest_of(config: EmbedderConfig, weights_sha256: str) -> str:
    """:func:`content_digest` of ``config`` and weights whose SHA-256 is ``weights_sha256``.

    The settings are hashed in a canonical form: without ``version`` and ``tag_threshold``
    (neither changes an embedding), without a setting equal to its default (a setting a
    later exprsim adds, with a default, leaves every digest as it was; a ``config.json``
    that spells a default out or leaves it out is the same model), and with whole-number
    floats as integers (``15`` and ``15.0`` are one angle).

    The network's own arguments (``model_kwargs``) are hashed as the config writes them:
    one that equals its network's default and is left out by hand makes another digest
    (the model is then refused where the other was recorded, in one line naming both; a
    network argument a later exprsim adds is in no earlier ``config.json``, so it leaves
    their digests as they were). Filling in the networks' defaults would have changed
    the digest of the shipped model, which indexes and reference sets record."""
    import hashlib

    settings = _whole_numbers(asdict(config))
    defaults = _whole_numbers(asdict(EmbedderConfig(model=config.model)))
    for key in ("version", "tag_threshold"):
        settings.pop(key, None)
    text = json.dumps(_beyond_defaults(settings, defaults), sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(f"{weights_sha256}\n{text}".encode()).hexdigest()[:16]


def _whole_numbers(value: Any) -> Any:
    """``value`` with whole-number finite floats as integers, lists for tuples, at every
    level."""
    if isinstance(value, dict):
        return {k: _whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_whole_numbers(v) for v in value]
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def _beyond_defaults(value: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``value`` that differ from ``defaults`` (compared as JSON: ``True``
    is not ``1``), nested dictionaries compared entry by entry."""
    out: dict[str, Any] = {}
    for key, v in value.items():
        d = defaults.get(key, _NO_DEFAULT)
        if isinstance(v, dict) and isinstance(d, dict):
            inner = _beyond_defaults(v, d)
            if inner:
                out[key] = inner
        elif d is _NO_DEFAULT or json.dumps(v, sort_keys=True, default=str) != json.dumps(
            d, sort_keys=True, default=str
        ):
            out[key] = v
    return out


_NO_DEFAULT = object()


def embed_aligned(embedder: Any, crops: np.ndarray) -> np.ndarray:
    """``embedder.embed_crops(crops)`` for crops exprsim aligned itself: an
    :class:`Embedder` is told not to re-frame them (no detector runs); any other object with
    an ``embed_crops(crops)`` method is called as it is."""
    if isinstance(embedder, Embedder):
        return embedder.embed_crops(crops, reframe=False)
    return np.asarray(embedder.embed_crops(crops))


def _level_models(folder: Path) -> list[str]:
    """The ``level<n>`` folders of ``folder`` that hold a model, by ``n``."""
    try:
        names = [p.name for p in folder.glob("level*") if re.fullmatch(r"level\d+", p.name)]
    except OSError:
        return []
    found = [n for n in names if _is_file(folder / n / "config.json")]
    return sorted(found, key=lambda n: int(n[5:]))


def check_model_files(name: str | os.PathLike[str]) -> Path:
    """The folder of a shipped model or a checkpoint folder holding ``config.json`` +
    ``model.safetensors`` (checked without reading them: commands check it before loading
    data).

    Raises:
        ModelError: not a name or path; the files are missing (a training run not exported
            yet is named as one); :class:`~exprsim.errors.DownloadDisabledError` for a URL.
    """
    if not isinstance(name, str | os.PathLike):
        raise ModelError(f"a model is a shipped name or a folder path, got {name!r}")
    folder = _weights_dir(str(name)) if name in SHIPPED else Path(name)
    if _is_file(folder / "config.json") and _is_file(folder / "model.safetensors"):
        return folder
    levels = _level_models(folder)
    if levels:  # an sgm-subspaces run: a model per level, none at its root
        raise ModelError(
            f"model {printable(str(folder))}: an sgm-subspaces run, whose models are its "
            f"levels' folders ({', '.join(levels)}): load one of those, e.g. "
            f"{printable(str(folder / levels[-1]))}"
        )
    if any(_is_file(folder / f) for f in ("train_config.json", "state.pt")):
        raise ModelError(
            f"model {printable(str(folder))}: a training run not exported yet (no config.json "
            "+ model.safetensors: it is still training, or stopped before its end; run "
            "`exprsim train` with its config and --out again to finish it)"
        )
    from exprsim.io import as_url

    url = as_url(os.fspath(name))
    if url is not None:  # Path folds "https://" to "https:/": said as given
        raise DownloadDisabledError(
            f"model {printable(url)}: a URL, and exprsim never downloads weights: download "
            "the model's folder (config.json + model.safetensors) and give its path"
        )
    raise ModelError(
        f"model {name!r}: no config.json + model.safetensors in {printable(str(folder))} "
        f"(shipped models: {', '.join(SHIPPED)}; exprsim never downloads weights)"
    )


def load_model(
    name: str | os.PathLike[str] = "default",
    device: str = "cpu",
    batch_size: int = 64,
    fuse: bool = True,
) -> Embedder:
    """Load a shipped model, or a checkpoint folder, as an :class:`Embedder`.

    Args:
        name: ``"default"`` (ships in the package) or a path to a folder holding
            ``config.json`` + ``model.safetensors`` (as written by ``exprsim train``).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        batch_size: crops per forward pass.
        fuse: fold BatchNorm layers into the convolutions before them
            (:func:`exprsim.models.fuse.fuse_conv_bn`; same outputs to float rounding, ~15%
            faster on CPU). The network is then for inference only; pass ``False`` to get
            the trainable module with its BatchNorm layers.

    Raises:
        ModelError: unknown name, missing/inconsistent weights, or a folder whose model a
            command is writing or stopped writing (:func:`exprsim.io.writing_model`).
            Nothing is downloaded: a URL is a
            :class:`~exprsim.errors.DownloadDisabledError` (a ``ModelError``).
    """
    import torch

    from exprsim.io import WRITING_MODEL_MARK, model_being_written
    from exprsim.models.fuse import fuse_conv_bn
    from exprsim.models.registry import create_model

    folder = check_model_files(name)
    cfg_path, w_path = folder / "config.json", folder / "model.safetensors"
    if name not in SHIPPED and model_being_written(folder):
        raise ModelError(
            f"model {printable(str(folder))}: a command is writing it now, or stopped before it "
            f"finished (it left {WRITING_MODEL_MARK}), so its config.json and "
            "model.safetensors may not belong together: run that command again"
        )
    config = _read_config(cfg_path)
    if name not in SHIPPED:  # a folder from anywhere: before a byte is allocated for it
        _check_fits(config, cfg_path, w_path)
    try:
        # its random initial weights, replaced by the file's, drawn from a fork of torch's
        # generator: a host that seeded torch gets the same numbers after a load as before
        with torch.random.fork_rng(devices=[]):
            model = create_model(
                config.model, embedding_dim=config.embedding_dim, **config.model_kwargs
            )
    except ModelError:
        raise
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{cfg_path}: cannot build {config.model!r} from it: {exc}") from exc
    state, weights_sha256 = _read_weights(w_path)
    broken = [k for k, v in state.items() if v.is_floating_point() and not v.isfinite().all()]
    if broken:  # e.g. a diverged training run: every embedding would be NaN
        raise ModelError(
            f"{w_path}: NaN or infinite weights in {len(broken)} tensors (e.g. {broken[0]}); "
            "the run that wrote them diverged"
        )
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # tensor shapes differ from the config's network
        first = str(exc).strip().splitlines()[-1].strip()
        raise ModelError(
            f"{w_path}: weights do not fit {config.model} as configured ({first})"
        ) from exc
    if missing or unexpected:
        raise ModelError(
            f"{w_path}: weights do not match {config.model} (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    if fuse:
        fuse_conv_bn(model)
    digest = _digest_of(config, weights_sha256)
    embedder = Embedder(model, config, batch_size=batch_size, device=device, digest=digest)
    if name not in SHIPPED:  # the package's own weights are known to fit and be finite
        _check_output(embedder, w_path)
        _warn_of_a_shipped_name(config, folder, digest)
    return embedder


def _read_weights(w_path: Path) -> tuple[dict[str, Any], str]:
    """The tensors of a safetensors file and the SHA-256 of its bytes, from one read (the
    digest is of the very bytes loaded: a re-export between two reads gave one model's
    network with the other's digest)."""
    import hashlib

    from safetensors.torch import load as load_weights

    try:
        data = w_path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{printable(str(w_path))}: cannot read it ({exc})") from exc
    try:
        state = load_weights(data)
    except Exception as exc:  # safetensors raises its own error type for damaged files
        raise ModelError(f"{w_path}: not a readable safetensors file ({exc})") from exc
    return state, hashlib.sha256(data).hexdigest()


def _check_fits(config: EmbedderConfig, cfg_path: Path, w_path: Path) -> None:
    """Refuse a config whose network does not match the weights file, from the network
    built on PyTorch's ``meta`` device (no memory) and the file's header (no tensor read):
    a few hundred bytes of config (``stages: [[8192] * 50]``, 100,000 ensemble members,
    ``embedding_dim`` 10**9) allocated without bound before the weights were looked at.
    Integer or boolean tensors for float parameters are refused too (cast silently, every
    face had one embedding)."""
    import torch
    from safetensors import safe_open

    from exprsim.models.registry import create_model

    try:
        with safe_open(str(w_path), framework="pt") as f:
            have = {
                k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype())
                for k in f.keys()  # noqa: SIM118 - a safe_open handle
            }
    except Exception as exc:  # safetensors raises its own error type for damaged files
        raise ModelError(f"{w_path}: not a readable safetensors file ({exc})") from exc
    # every module is a Python object even on the meta device: 20,000 ensemble members of
    # 3 bytes each ({}) took 3 GB and 3 minutes to build; a network has a weight tensor or
    # more for about every item of its settings (a member, a stage, a layer's width)
    items = _items(config.model_kwargs)
    if items > 2 * len(have) + 256:
        raise ModelError(
            f"{cfg_path}: its settings describe a network of {items:,} parts (members, stages, "
            f"layers) and its weights file holds {len(have):,} tensors: they do not belong "
            "together"
        )
    try:
        with torch.device("meta"):
            meta = create_model(
                config.model, embedding_dim=config.embedding_dim, **config.model_kwargs
            )
        want = {k: (tuple(v.shape), v.is_floating_point()) for k, v in meta.state_dict().items()}
    except (TypeError, ValueError, RuntimeError, NotImplementedError) as exc:
        # RuntimeError: sizes beyond any memory ("Storage size calculation overflowed");
        # every registered network builds on the meta device (tests/models checks)
        raise ModelError(f"{cfg_path}: cannot build {config.model!r} from it: {exc}") from exc
    bad = [k for k in want if k not in have or have[k][0] != want[k][0]]
    extra = [k for k in have if k not in want]
    if bad or extra:
        k = (bad or extra)[0]
        raise ModelError(
            f"{w_path}: weights do not fit {config.model} as configured ({len(bad)} tensors "
            f"missing or of another shape, {len(extra)} unexpected; e.g. {k}: file "
            f"{have.get(k, ('none',))[0]}, network {want.get(k, ('none',))[0]})"
        )
    ints = [k for k, (_, floating) in want.items() if floating and have[k][1] not in _FLOATS]
    if ints:
        raise ModelError(
            f"{w_path}: {len(ints)} weights are not floating-point numbers (e.g. {ints[0]}: "
            f"{have[ints[0]][1]}); the network's are"
        )


def _items(value: Any) -> int:
    """How many items the lists and objects nested in ``value`` hold, all levels together."""
    if isinstance(value, dict):
        return len(value) + sum(_items(v) for v in value.values())
    if isinstance(value, list | tuple):
        return len(value) + sum(_items(v) for v in value)
    return 0


#: safetensors' floating-point dtypes
_FLOATS = frozenset({"F16", "BF16", "F32", "F64"})


def _check_output(embedder: Embedder, w_path: Path) -> None:
    """Refuse a model whose embedding of a test crop is not finite (settings that overflow,
    ``classifier_scale`` 1e300: NaN for every face, and some commands exited 0)."""
    side = int(embedder.config.preprocess.input_size)
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, size=(1, side, side, 3), dtype=np.uint8)
    out = embedder.embed_crops(crop, reframe=False)
    if not np.isfinite(out).all():
        raise ModelError(
            f"{w_path.parent}: its embeddings are not finite numbers (NaN or infinity for a "
            "test crop): a setting of its config.json overflows"
        )


def _warn_of_a_shipped_name(config: EmbedderConfig, folder: Path, digest: str) -> None:
    """Warn when a folder's ``name@version`` is a shipped model's while its content
    (``digest``, of the weights and settings as loaded) is not: indexes, reference sets and
    tags of earlier versions, which record no digest, take one for the other's."""
    shipped = {n: _read_config(_weights_dir(n) / "config.json").name_version for n in SHIPPED}
    claims = [n for n, nv in shipped.items() if nv == config.name_version]
    if claims and digest != content_digest(claims[0]):
        log.warning(
            "model %s: named %s, as the shipped model %r, with other weights or settings: an "
            "index, tags or a kNN reference set of one will be taken for the other's; give it "
            "another name or version in its config.json",
            printable(str(folder)), config.name_version, claims[0],
        )  # fmt: skip
