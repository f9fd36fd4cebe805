"""Landmark features for the perceptual VAE: pose-normalised face-mesh points.

Preprocessing follows the paper (Section V-A): every point cloud is rotated to a neutral
pose, centred at the point between the eyes and scaled so that the eye distance is 1, each
eye's position being the centre of its lower-eyelid points.

**Neutral pose.** The paper rotates with pose estimates shipped with its data sets; we have
none, so the pose is read off the mesh itself, as a rigid frame that any rotation, uniform
scale and translation of the input carries along (so the result is exactly invariant to
them):

* ``x``: from the subject's right lower-eyelid centre to the left one (image left to right
  for an unmirrored upright face);
* ``y``: from the eye midpoint towards the nose base (mesh points 2, 98, 327: the columella
  and the alae, which do not move with expressions), made orthogonal to ``x``; "down";
* ``z = x × y``: into the face, matching MediaPipe's convention that smaller ``z`` is
  nearer the camera.

MediaPipe's ``z`` is in the same pixel scale as ``x, y`` (weak perspective), so the mesh is
treated as a 3-D point cloud.

**Points.** The 478-point mesh is dense and its 10 iris points follow gaze, not expression.
We keep :data:`FEATURE_POINTS`, 125 points in the spirit of the 83 BU-3DFE landmarks the
paper used: eyebrows (2 x 10), eye contours (2 x 16), nose (12), outer and inner lips
(2 x 20) and the lower face contour (21), giving ``125 * 3 = 375`` features.

**FER.** :func:`extract_fer_landmarks` runs :class:`~exprsim.faces.landmarks.MeshLandmarker`
on FER2013 crops upscaled 48 -> 192 px (bicubic, gray -> RGB, whole crop as the box, as
``benchmarks/fer_template.py``) and caches the raw meshes with a success mask as ``.npz``.
"""

from __future__ import annotations

import hashlib
import logging
import time
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from exprsim.equality import array_equality
from exprsim.progress import progress_bar

log = logging.getLogger(__name__)

#: Lower-eyelid points (corners included) of the subject's right eye (image left).
RIGHT_LOWER_LID: tuple[int, ...] = (33, 7, 163, 144, 145, 153, 154, 155, 133)
#: Lower-eyelid points of the subject's left eye (image right).
LEFT_LOWER_LID: tuple[int, ...] = (263, 249, 390, 373, 374, 380, 381, 382, 362)
#: Nose base (columella and alae): rigid points fixing the face's vertical axis.
NOSE_BASE: tuple[int, ...] = (2, 98, 327)

_BROWS = (
    70,
    63,
    105,
    66,
    107,
    46,
    53,
    52,
    65,
    55,
    300,
    293,
    334,
    296,
    336,
    276,
    283,
    282,
    295,
    285,
)
_EYES = (
    *(33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173),
    *(263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398),
)
_NOSE = (168, 6, 197, 195, 5, 4, 1, 2, 98, 327, 64, 294)
_LIPS = (
    *(61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185),
    *(78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191),
)
_CONTOUR: tuple[int, ...] = (234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400)
_CONTOUR += (378, 379, 365, 397, 288, 361, 323, 454)
#: Mesh indices kept as features (125 points; see module docstring).
FEATURE_POINTS: tuple[int, ...] = _BROWS + _EYES + _NOSE + _LIPS + _CONTOUR
#: Feature dimensionality: ``len(FEATURE_POINTS) * 3``.
FEATURE_DIM = 3 * len(FEATURE_POINTS)


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    if np.any(n < 1e-9):
        raise ValueError("degenerate landmarks: cannot define the face frame")
    return v / n


def normalise_mesh(mesh: np.ndarray) -> np.ndarray:
    """Rotate to the neutral pose, centre between the eyes, scale to unit eye distance.

    Args:
        mesh: ``(468|478, 3)`` or a batch ``(N, 468|478, 3)`` face mesh (pixels).

    Returns:
        The same shape, float32: in the face frame of the module docstring, the point
        between the lower-eyelid centres at the origin, the eye distance 1.

    Raises:
        ValueError: wrong shape, or coinciding eyes / nose on the eye line.
    """
    m = np.asarray(mesh, dtype=np.float64)
    single = m.ndim == 2
    if single:
        m = m[None]
    if m.ndim != 3 or m.shape[1] < 468 or m.shape[2] != 3:
        raise ValueError(f"expected a (N, 468|478, 3) face mesh, got {np.shape(mesh)}")
    # each mesh times a power of two (exact; the result does not depend on the scale): one
    # of 1e300 pixels squared to infinity (eye distance inf, every feature and code 0)
    peak = np.abs(m).max(axis=(1, 2), keepdims=True) if m.size else np.ones((len(m), 1, 1))
    _, exponent = np.frexp(np.where(np.isfinite(peak) & (peak > 0), peak, 1.0))
    m = np.ldexp(m, -exponent)
    eye_r = m[:, list(RIGHT_LOWER_LID)].mean(axis=1)
    eye_l = m[:, list(LEFT_LOWER_LID)].mean(axis=1)
    mid = (eye_r + eye_l) / 2.0
    across = eye_l - eye_r
    dist = np.linalg.norm(across, axis=-1)
    x = _unit(across)
    down = m[:, list(NOSE_BASE)].mean(axis=1) - mid
    y = _unit(down - (down * x).sum(-1, keepdims=True) * x)
    z = np.cross(x, y)
    rot = np.stack([x, y, z], axis=1)  # (N, 3, 3): rows are the frame axes
    out = np.einsum("nij,npj->npi", rot, m - mid[:, None]) / dist[:, None, None]
    out = out.astype(np.float32)
    return out[0] if single else out


def mesh_features(mesh: np.ndarray, points: Sequence[int] = FEATURE_POINTS) -> np.ndarray:
    """Feature vectors of face meshes: normalised, reduced to ``points``, flattened.

    Args:
        mesh: ``(468|478, 3)`` or ``(N, 468|478, 3)`` raw face mesh(es).
        points: mesh indices to keep (default :data:`FEATURE_POINTS`).

    Returns:
        ``(3 P,)`` or ``(N, 3 P)`` float32 (``x, y, z`` of each point in turn).
    """
    norm = normalise_mesh(mesh)
    sel = norm[..., list(points), :]
    return sel.reshape(*sel.shape[:-2], -1)


@array_equality
@dataclass(frozen=True)
class FerLandmarks:
    """Cached face meshes of one FER+ split (order of :func:`exprsim.data.fer.load_ferplus`).

    Attributes:
        mesh: ``(N, 478, 3)`` float32 meshes in pixels of the 48x48 crop (NaN where failed).
        ok: ``(N,)`` bool: the mesh found a face.
        rows: ``(N,)`` int64 fer2013.csv rows (to check the cache matches the split).
        usage: split name.
        seconds: wall time the extraction took.
    """

    mesh: np.ndarray
    ok: np.ndarray
    rows: np.ndarray
    usage: str
    seconds: float

    @property
    def success_rate(self) -> float:
        return float(self.ok.mean()) if len(self.ok) else 0.0

    def features(self) -> np.ndarray:
        """``(N, FEATURE_DIM)`` float32 features (NaN rows where the mesh failed)."""
        out = np.full((len(self.ok), FEATURE_DIM), np.nan, np.float32)
        if self.ok.any():
            out[self.ok] = mesh_features(self.mesh[self.ok])
        return out


def mesh_of_crop(landmarker: object, crop: np.ndarray, side: int = 192) -> np.ndarray | None:
    """Face mesh of one gray crop, upscaled to ``side`` px; ``(478, 3)`` in crop pixels."""
    import cv2

    up = cv2.resize(crop, (side, side), interpolation=cv2.INTER_CUBIC)
    rgb = np.ascontiguousarray(np.repeat(up[:, :, None], 3, axis=2))
    mesh = landmarker.mesh(rgb, np.array([0.0, 0.0, side, side]))  # type: ignore[attr-defined]
    if mesh is None:
        return None
    scale = crop.shape[0] / side
    out = mesh.astype(np.float32).copy()
    out[:, :2] = (out[:, :2] + 0.5) * scale - 0.5
    out[:, 2] *= scale
    return out


_CHUNK = 500
#: rough faces meshed per second by one worker (round 33's audit saw 7.4 s per chunk of
#: 500 faces on this project's 2-core machine): only for the announcement of a long
#: extraction
MESH_FACES_PER_SECOND = 68


def _rough_duration(faces: int, workers: int) -> str:
    """How long meshing ``faces`` takes on ``workers`` processes, roughly, in words."""
    minutes = round(faces / (MESH_FACES_PER_SECOND * max(1, workers)) / 60, 1)
    if minutes < 1:
        return "under a minute"
    return "about a minute" if minutes < 1.5 else f"about {round(minutes)} minutes"


def _mesh_chunk(args: tuple[int, np.ndarray, int]) -> tuple[int, np.ndarray, np.ndarray]:
    """Worker: meshes of a chunk of crops -> ``(start, (n, 478, 3) mesh, (n,) ok)``."""
    from exprsim.faces.landmarks import MESH_POINTS, MeshLandmarker

    start, crops, side = args
    lmk = MeshLandmarker()
    mesh = np.full((len(crops), MESH_POINTS, 3), np.nan, np.float32)
    ok = np.zeros(len(crops), bool)
    try:
        for n, crop in enumerate(crops):
            m = mesh_of_crop(lmk, crop, side)
            if m is not None:
                mesh[n], ok[n] = m, True
    finally:
        lmk.close()
    return start, mesh, ok


def _init_mesh_worker() -> None:
    from exprsim.workers import init_worker

    init_worker()  # Ctrl-C ignored (the parent stops the pool), ends with its parent


def _mesh_in_processes(
    chunks: list[tuple[int, np.ndarray, int]], workers: int, progress: bool
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """:func:`_mesh_chunk` of every chunk on ``workers`` spawned processes, in order.

    Raises:
        ExprsimError: called by a worker process that is still starting (a script without
            an ``if __name__ == "__main__":`` guard), or a worker process died. (An
            ``mp.Pool`` replaced a worker that died while starting, for ever: it hung.)
    """
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from exprsim.workers import refuse_in_starting_worker, running_pool

    refuse_in_starting_worker(f"extract_fer_landmarks(workers={workers})")
    ex = ProcessPoolExecutor(
        workers, mp_context=mp.get_context("spawn"), initializer=_init_mesh_worker
    )
    died = (
        "a mesh worker process died ({exc}); when this runs from a script, put the script's "
        'code under `if __name__ == "__main__":`, else try workers=1 (out of memory?)'
    )
    with running_pool(ex, died):  # Ctrl-C, an error: workers stopped now, queued chunks dropped
        results = ex.map(_mesh_chunk, chunks)
        yield from progress_bar(results, enabled=progress, total=len(chunks))


def _pixels_digest(images: np.ndarray, side: int) -> str:
    """SHA-256 of the crops' pixels, their shape and the mesh side: what a cache is valid for.

    Row numbers alone did not tell two FER copies (or a subset) apart.
    """
    h = hashlib.sha256(f"{images.shape}|{images.dtype}|{side}".encode())
    h.update(np.ascontiguousarray(images).data)
    return h.hexdigest()


def extract_fer_landmarks(
    usage: str,
    cache_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
    side: int = 192,
    progress: bool = True,
    workers: int = 1,
    limit: int | None = None,
) -> FerLandmarks:
    """Face meshes of a FER+ split, cached as ``<cache_dir>/mesh-<usage>.npz``.

    Training is loaded with ``drop_duplicates_of="PublicTest"`` (as every exprsim training
    run). The cache is keyed by the split's pixels and ``side``: one made from other
    pixels, or before keys existed, is recomputed.

    Args:
        usage: ``"Training"`` or ``"PublicTest"``.
        cache_dir: where the ``.npz`` lives; default the user's exprsim cache folder's
            ``pvae/`` (``$EXPRSIM_CACHE``, else ``$XDG_CACHE_HOME/exprsim``, else
            ``~/.cache/exprsim``; it was ``runs/pvae`` under the working folder). Training
            and evaluation pass the run's own ``landmark_cache``.
        data_dir: FER folder (default :func:`exprsim.data.fer.default_data_dir`).
        side: upscaled crop side fed to the mesh.
        progress: tqdm bar.
        workers: processes (each with its own MediaPipe graph).
        limit: only the split's first ``limit`` faces (a smoke run's ``max_train``): the
            whole split's cache serves them when it is there, else they are meshed alone and
            cached as ``mesh-<usage>-first<limit>.npz``.
    """
    from exprsim.data.fer import _cache_dir, load_ferplus

    if cache_dir is None:
        cache_dir = _cache_dir() / "pvae"
    split = load_ferplus(
        usage, data_dir, drop_duplicates_of="PublicTest" if usage == "Training" else None
    )
    path = Path(cache_dir) / f"mesh-{usage}.npz"
    images, rows = split.images, np.asarray(split.rows)
    if limit is not None and limit < len(images):
        whole = _cached_mesh(path, _pixels_digest(images, side), rows, usage, quiet=True)
        if whole is not None:
            return FerLandmarks(
                whole.mesh[:limit], whole.ok[:limit], rows[:limit], usage, whole.seconds
            )
        images, rows = images[:limit], rows[:limit]
        path = path.with_name(f"mesh-{usage}-first{limit}.npz")
    digest = _pixels_digest(images, side)
    cached = _cached_mesh(path, digest, rows, usage)
    if cached is not None:
        return cached
    return _extract(images, rows, usage, side, progress, workers, (path, digest))


def _extract(
    images: np.ndarray,
    rows: np.ndarray,
    usage: str,
    side: int,
    progress: bool,
    workers: int,
    cache: tuple[Path, str],
) -> FerLandmarks:
    """Mesh ``images`` (rows ``rows`` of split ``usage``) and cache them at ``cache``'s path
    with its pixel digest (a cache that cannot be written is warned about, not fatal)."""
    from exprsim.faces.landmarks import MESH_POINTS
    from exprsim.io import save_npz, write_atomically

    path, digest = cache
    log.warning(  # said before the minutes of work: where the cache was looked for
        "no usable cached face meshes at %s: meshing the %d faces of FER+ %s now (%s on %d "
        "worker%s) and caching them there",
        path.absolute(),
        len(images),
        usage,
        _rough_duration(len(images), workers),
        workers,
        "" if workers == 1 else "s",
    )
    mesh = np.full((len(images), MESH_POINTS, 3), np.nan, np.float32)
    ok = np.zeros(len(images), bool)
    t0 = time.perf_counter()
    chunks = [(i, images[i : i + _CHUNK], side) for i in range(0, len(images), _CHUNK)]
    if workers > 1:
        for start, m, found in _mesh_in_processes(chunks, workers, progress):
            mesh[start : start + len(m)], ok[start : start + len(m)] = m, found
    else:
        for chunk in progress_bar(chunks, enabled=progress, desc=f"mesh {usage}"):
            start, m, found = _mesh_chunk(chunk)
            mesh[start : start + len(m)], ok[start : start + len(m)] = m, found
    secs = time.perf_counter() - t0
    arrays = {"mesh": mesh, "ok": ok, "rows": rows}
    arrays.update(seconds=np.asarray(secs), digest=np.asarray(digest))
    try:  # whole or not at all: a run stopped while writing leaves no half cache to trip on
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, lambda fh: save_npz(fh, arrays, compressed=True))
    except OSError as exc:  # a full disk or a read-only cache must not lose the meshes
        log.warning(
            "could not cache the face meshes of %s (%s): they are used uncached", usage, exc
        )
    log.info("%s: mesh found %d / %d faces (%.1f%%)", usage, ok.sum(), len(ok), 100 * ok.mean())
    return FerLandmarks(mesh, ok, rows, usage, secs)


def _cached_mesh(
    path: Path, digest: str, rows: np.ndarray, usage: str, quiet: bool = False
) -> FerLandmarks | None:
    """The meshes cached at ``path`` for pixels ``digest``, else ``None`` (no cache, one
    made from other pixels, or a damaged file: recomputed, with a warning for the last two
    unless ``quiet``: only looked at)."""
    if not path.is_file():
        return None
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):  # a plain .npy: not a cache
            raise ValueError("not an .npz archive")
        with z:
            if "digest" in z.files and str(z["digest"]) == digest:
                mesh, ok, seconds = z["mesh"], z["ok"], float(z["seconds"])
                if len(mesh) == len(ok) == len(rows):
                    # the split's own row numbers (the pixels, not the rows, key the meshes)
                    return FerLandmarks(mesh, ok, rows, usage, seconds)
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        # cut short (a run stopped while writing, before the writes were atomic), foreign,
        # or damaged (a flipped byte in a compressed member: zlib.error)
        if not quiet:
            log.warning("%s is damaged (%s); recomputing", path, exc)
        return None
    if not quiet:
        log.warning("%s was made from other pixels or settings; recomputing", path)
    return None
