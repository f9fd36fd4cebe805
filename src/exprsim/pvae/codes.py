"""Trained perceptual-VAE models at inference: expression codes from face meshes.

The hook for the video pipeline (``--embedding pvae``)::

    from exprsim.pvae.codes import pvae_codes
    codes = pvae_codes(meshes, neutral=neutral_mesh, model="runs/pvae-m2")  # (N, 30)

``model`` (required) is a trained run folder: ``runs/pvae-m2`` is the one
``exprsim train --config configs/pvae-m2.json --out runs/pvae-m2`` makes in the source
repository (no perceptual-VAE model ships with the package).

``meshes`` are raw MediaPipe meshes in image pixels (``MeshLandmarker.mesh`` /
``faces.landmarks.face_mesh``: ``(478, 3)`` or ``(N, 478, 3)``); any head pose, position and
scale (they are normalised by :func:`exprsim.pvae.features.mesh_features`).

**The neutral face.** When the person's neutral frame is known, pass its mesh as
``neutral``. A model trained with per-identity neutral faces (``neutral_source ==
"identity"``) gets it as the network's ``y`` input, as in the paper. Our FER-trained models
(``"population_mean"``) only ever saw one fallback neutral face, so their ``y`` input
carries no learnt identity information; for them the known neutral is used by an offset
in feature space, ``x' = x - f(neutral) + f_0`` (``f_0`` the fallback neutral), i.e. the
person's deviation from their own neutral face is transplanted onto the population-mean
neutral face before encoding. This removes identity under an additive shape model; it
applies to every variant, including the plain VAE. Without ``neutral`` the fallback is used
(identity is then not removed).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from exprsim.errors import ArgumentError, ModelError, require_positive_int
from exprsim.io import WRITING_MODEL_MARK, model_being_written
from exprsim.pvae.features import FEATURE_DIM
from exprsim.pvae.model import PerceptualVAE, PVAEConfig


def _features(values: object, dim: int, what: str, one: bool = False) -> np.ndarray:
    """``values`` as ``(N, dim)`` float32 (or ``(dim,)`` too when ``one``), finite; else
    one ValueError naming ``what``."""
    try:
        arr = np.asarray(values, np.float32)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be an array of numbers: {exc}") from exc
    shapes = f"(N, {dim})" + (f" or ({dim},)" if one else "")
    ok_shape = (arr.ndim == 2 and arr.shape[1] == dim) or (one and arr.shape == (dim,))
    if not ok_shape:
        raise ValueError(f"{what} must be {shapes} features, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} holds NaN or infinite features")
    return arr


class PVAEEncoder:
    """A trained perceptual VAE in eval mode, mapping features or meshes to codes.

    Args:
        model: the network (weights and statistics loaded).
    """

    def __init__(self, model: PerceptualVAE) -> None:
        self.model = model.eval()
        self.config = model.config

    def encode_features(
        self, x: np.ndarray, neutral: np.ndarray | None = None, batch_size: int = 2048
    ) -> np.ndarray:
        """Posterior means of feature vectors.

        Args:
            x: ``(N, D)`` features (:func:`~exprsim.pvae.features.mesh_features`).
            neutral: ``(D,)`` or ``(N, D)`` features of the person's neutral face, or ``None``
                (module docstring for how it is used).
            batch_size: faces per forward pass (an integer >= 1).

        Returns:
            ``(N, K)`` float32 codes.

        Raises:
            ValueError: ``x`` is not ``(N, D)`` finite numbers for this model's ``D``, or
                ``neutral`` is not ``(D,)`` / ``(N, D)`` finite numbers.
            ArgumentError: ``batch_size`` is not an integer >= 1 (-1 gave no codes at all,
                0 and 2.5 raw Python errors).
        """
        import torch

        batch_size = require_positive_int(batch_size, "batch_size", ArgumentError)
        d = int(self.model.neutral.numel())
        # a writable, C-ordered copy when needed: torch warned on a read-only array and
        # refused one with negative strides (x[::-1])
        x = np.require(_features(x, d, "x"), requirements=["C", "W"])
        y = None
        if neutral is not None:
            base = _features(neutral, d, "neutral", one=True)
            if base.ndim == 2 and base.shape != x.shape:
                raise ValueError(f"neutral must be ({d},) or {x.shape} features, got {base.shape}")
            y = np.broadcast_to(base, x.shape)
        fallback = self.model.neutral.numpy()
        if y is not None and self.config.neutral_source == "population_mean":
            x, y = x - y + fallback, None
        out = []
        with torch.no_grad():
            for s in range(0, len(x), batch_size):
                yb = (
                    None
                    if y is None
                    else torch.from_numpy(np.array(y[s : s + batch_size], copy=True))
                )  # a copy: one face's neutral is a read-only broadcast view (torch warned)
                mu, _ = self.model.encode(torch.from_numpy(x[s : s + batch_size]), yb)
                out.append(mu.numpy())
        k = self.config.latent_dim
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, k), np.float32)

    def codes(self, landmarks: np.ndarray, neutral: np.ndarray | None = None) -> np.ndarray:
        """Codes of raw face meshes.

        Args:
            landmarks: ``(478, 3)`` or ``(N, 478, 3)`` meshes (pixels, any pose).
            neutral: ``(478, 3)`` mesh of the person's neutral frame (or ``(N, 478, 3)``),
                or ``None``.

        Returns:
            ``(N, K)`` float32 (``N = 1`` for a single mesh; ``(0, K)`` for no mesh).

        Raises:
            ValueError: a mesh holds NaN or infinite values (a face where the mesh failed).
        """
        from exprsim.pvae.features import mesh_features

        arr = np.asarray(landmarks, dtype=np.float64)
        if arr.ndim == 3 and arr.shape[0] == 0:
            return np.zeros((0, self.config.latent_dim), np.float32)
        bad = [a for a in (arr, neutral) if a is not None and not np.isfinite(a).all()]
        if bad:
            raise ValueError("a face mesh holds NaN or infinite values (no mesh for that face)")
        x = np.atleast_2d(mesh_features(landmarks))
        y = None
        if neutral is not None:
            ref = np.asarray(neutral, dtype=np.float64)
            if ref.shape[-2:] != arr.shape[-2:] or (ref.ndim == 3 and len(ref) != len(x)):
                raise ValueError(  # was said of "features", which the caller never passed
                    f"neutral must be one mesh {arr.shape[-2:]} or one per face "
                    f"({len(x)}, {arr.shape[-2]}, {arr.shape[-1]}), got shape {ref.shape}"
                )
            try:
                y = mesh_features(ref)
            except ValueError as exc:
                raise ValueError(f"the neutral mesh: {exc}") from exc
        return self.encode_features(x, y)


def load_pvae(path: str | Path, feature_dim: int | None = FEATURE_DIM) -> PVAEEncoder:
    """Load a run folder written by :func:`exprsim.training.pvae.train_pvae`.

    Args:
        path: the run folder (``pvae_config.json`` + ``model.safetensors``).
        feature_dim: the number of features per face the run must take: by default
            :data:`~exprsim.pvae.features.FEATURE_DIM`, what face meshes give
            (:meth:`PVAEEncoder.codes`, the video pipeline); ``None`` for any (a run on the
            synthetic landmarks, used through :meth:`PVAEEncoder.encode_features`).

    Raises:
        ModelError: the folder lacks ``pvae_config.json`` or ``model.safetensors``; the
            folder is a training run not exported yet (said so, with how to finish it); the
            config is not valid JSON or not a perceptual-VAE config; the weights are not a
            readable safetensors file, hold NaN or infinite values, or do not fit the
            config; or the run takes another number of features than ``feature_dim``; or
            its training stopped while writing the weights. One line naming the file.
    """
    folder = Path(path)
    cfg_path, weights = folder / "pvae_config.json", folder / "model.safetensors"
    if not cfg_path.is_file() or not weights.is_file():
        raise ModelError(_not_loadable(folder))
    if model_being_written(folder):
        raise ModelError(
            f"{folder}: its training is writing the model now, or stopped before it finished "
            f"(it left {WRITING_MODEL_MARK}): run its exprsim train again"
        )
    cfg = _read_config(cfg_path)
    if feature_dim is not None and cfg.input_dim != feature_dim:
        raise ModelError(
            f"{folder}: trained on {cfg.input_dim} landmark features per face, but face meshes "
            f"give {feature_dim}: it cannot encode faces (a run on the synthetic landmarks?)"
        )
    try:
        model = PerceptualVAE(cfg)
    except (ValueError, TypeError, RuntimeError) as exc:  # e.g. a negative width
        raise ModelError(
            f"{cfg_path}: cannot build the network from it ({_last_line(exc)})"
        ) from exc
    _load_weights(model, weights)
    return PVAEEncoder(model)


def _not_loadable(folder: Path) -> str:
    """Why ``folder`` lacks a perceptual-VAE model: a training run not exported yet (its
    ``pvae_config.json`` is written when training starts, the weights when it ends), or no
    perceptual-VAE run at all."""
    started = [f for f in ("pvae_config.json", "state.pt") if (folder / f).is_file()]
    if started and (folder / "train_config.json").is_file():
        return (
            f"{folder}: a perceptual-VAE training run not exported yet (no model.safetensors: "
            "it is still training, or stopped before its end; run `exprsim train` with its "
            "config and --out again to resume and finish it)"
        )
    if (folder / "pvae_config.json").is_file():
        return f"{folder}: a perceptual-VAE run without its weights (no model.safetensors)"
    return f"{folder}: not a perceptual-VAE run (pvae_config.json + weights)"


def _last_line(exc: BaseException) -> str:
    """The last non-empty line of an exception's message (torch's are several lines)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _read_config(path: Path) -> PVAEConfig:
    """The :class:`PVAEConfig` in ``path``, or :class:`ModelError` naming the file."""
    from exprsim.config import from_dict

    try:
        return from_dict(PVAEConfig, json.loads(path.read_text()))
    except (OSError, UnicodeDecodeError, RecursionError, ValueError) as exc:  # JSONDecodeError too
        raise ModelError(f"{path}: not a perceptual-VAE config ({_last_line(exc)})") from exc


def _load_weights(model: PerceptualVAE, path: Path) -> None:
    """Load ``path`` into ``model``, or :class:`ModelError` naming the file."""
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error type for damaged files
        raise ModelError(f"{path}: not a readable safetensors file ({_last_line(exc)})") from exc
    broken = [k for k, v in state.items() if v.is_floating_point() and not v.isfinite().all()]
    if broken:  # a diverged training run: every code would be NaN
        raise ModelError(
            f"{path}: NaN or infinite weights in {len(broken)} tensors (e.g. {broken[0]}); "
            "the run that wrote them diverged"
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:  # missing, unexpected or differently shaped tensors
        raise ModelError(
            f"{path}: weights do not fit the network of pvae_config.json ({_last_line(exc)})"
        ) from exc


def is_pvae_run(path: str | Path) -> bool:
    """Whether ``path`` is a perceptual-VAE run folder."""
    return (Path(path) / "pvae_config.json").is_file()


_CACHE: dict[str, PVAEEncoder] = {}


def pvae_codes(
    landmarks: np.ndarray, neutral: np.ndarray | None = None, *, model: str | Path
) -> np.ndarray:
    """Identity-neutralised expression codes of face meshes (the video pipeline's hook).

    Args:
        landmarks: ``(478, 3)`` or ``(N, 478, 3)`` MediaPipe meshes in pixels.
        neutral: the person's neutral-frame mesh ``(478, 3)``, or ``None`` (fallback).
        model: a perceptual-VAE run folder (loaded once and cached); required, no model
            ships with the package: the source repository trains one with ``exprsim train
            --config configs/pvae-m2.json --out runs/pvae-m2`` (its default was that
            ``runs/pvae-m2``, relative to the working folder: "not a perceptual-VAE run"
            anywhere else).

    Returns:
        ``(N, 30)`` float32 posterior means (not L2-normalised; compare with Euclidean
        distance, as the triplet prior was trained with).
    """
    key = str(Path(model).resolve())
    if key not in _CACHE:
        _CACHE[key] = load_pvae(model)
    return _CACHE[key].codes(landmarks, neutral)
