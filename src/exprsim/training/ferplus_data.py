"""The data of a FER+ vote training run: FER2013 crops with their FER+ vote distributions,
split into training and validation faces (:func:`load_data`), packed for machines
without ``../shared`` (:func:`pack_ferplus`), distillation targets, and the vote triplets
validation scores."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from exprsim.data.split import holdout_split
from exprsim.errors import ArgumentError
from exprsim.training.ferplus_config import TrainConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FerArrays:
    images: np.ndarray  # (N, 48, 48) uint8
    dist: np.ndarray  # (N, 8) float32
    votes: np.ndarray | None = None  # (N, 8) float32 vote counts (FER+ only)
    target: np.ndarray | None = None  # (N, 8) training target when not ``dist`` (teachers)
    teacher_vecs: np.ndarray | None = None  # (N, T, D) teachers' vectors (relational term)
    rows: np.ndarray | None = None  # (N,) row of each face among the faces a config loads
    n_loaded: int = 0  # how many faces the config loads (before the hold-out and filters)
    fer2013: np.ndarray | None = None  # (N,) FER+ index of the FER2013 label (-1: none)

    @property
    def train_target(self) -> np.ndarray:
        return self.dist if self.target is None else self.target


def synthetic_votes(n: int, seed: int = 0, size: int = 48) -> FerArrays:
    """Tiny learnable stand-in for FER+: class-dependent patterns, noisy vote distributions."""
    rng = np.random.default_rng(seed)
    n_classes = 8
    protos = rng.uniform(0, 255, size=(n_classes, size, size)).astype(np.float32)
    mix = rng.dirichlet(np.full(n_classes, 0.3), size=n).astype(np.float32)
    imgs = np.einsum("nc,chw->nhw", mix, protos) + rng.normal(0, 10, size=(n, size, size))
    return FerArrays(np.clip(imgs, 0, 255).astype(np.uint8), mix)


def load_data(cfg: TrainConfig) -> tuple[FerArrays, FerArrays]:
    """``(train, validation)`` faces of a run: the seeded hold-out of FER+ Training
    (PublicTest duplicates dropped; ``min_votes`` filters the training part only; a
    ``teacher`` file blends the training part's targets; ``val_drop_twins`` leaves
    validation faces with a training twin out). Each part's ``rows`` say which of the
    ``n_loaded`` faces as loaded (:func:`_load_full`) it kept, in its order."""
    full = _load_full(cfg)
    tr_idx, val_idx = holdout_split(len(full.images), cfg.val_fraction, split_seed(cfg))
    if cfg.min_votes and full.votes is not None:
        tr_idx = tr_idx[full.votes[tr_idx].sum(axis=1) >= cfg.min_votes]
    if cfg.val_drop_twins > 0 and len(val_idx) and len(tr_idx):
        from exprsim.data.twins import near_twin_similarity

        sim = near_twin_similarity(full.images[val_idx], full.images[tr_idx])
        log.info(
            "validation: %d of %d faces with a training twin left out",
            int((sim >= cfg.val_drop_twins).sum()),
            len(val_idx),
        )
        val_idx = val_idx[sim < cfg.val_drop_twins]
    teacher = load_teacher_targets(cfg.teacher, full.images) if cfg.teacher else None
    tvecs = None
    if cfg.teacher and cfg.teacher_pair_weight > 0:
        tvecs = load_teacher_vectors(cfg.teacher, full.images)

    def take(idx: np.ndarray, blend: bool) -> FerArrays:
        votes = None if full.votes is None else full.votes[idx]
        target = None
        if blend and cfg.fer2013_vote > 0:
            target = fer2013_voted(full, idx, cfg)
        if blend and teacher is not None:
            w = cfg.teacher_weight
            base = full.dist[idx] if target is None else target
            target = ((1.0 - w) * base + w * teacher[idx]).astype(np.float32)
        tv = tvecs[idx] if blend and tvecs is not None else None
        return FerArrays(full.images[idx], full.dist[idx], votes, target, tv, idx, len(full.images))

    return take(tr_idx, True), take(val_idx, False)


#: FER2013's 7 labels (``emotion`` column order) -> the FER+ class each one names
FER2013_TO_FERPLUS: dict[str, str] = {
    "angry": "anger",
    "disgust": "disgust",
    "fear": "fear",
    "happy": "happiness",
    "sad": "sadness",
    "surprise": "surprise",
    "neutral": "neutral",
}


def fer2013_as_ferplus(emotion: np.ndarray) -> np.ndarray:
    """``(N,)`` FER2013 labels (0-6) -> ``(N,)`` int64 FER+ class indices (-1: invalid)."""
    from exprsim.data.fer import FER2013_CLASSES, FERPLUS_CLASSES

    table = np.array([FERPLUS_CLASSES.index(FER2013_TO_FERPLUS[c]) for c in FER2013_CLASSES])
    e = np.asarray(emotion, np.int64)
    ok = (e >= 0) & (e < len(table))
    return np.where(ok, table[np.clip(e, 0, len(table) - 1)], -1)


def fer2013_voted(full: FerArrays, idx: np.ndarray, cfg: TrainConfig) -> np.ndarray:
    """``(len(idx), 8)`` float32 targets: each face's FER+ votes plus ``fer2013_vote`` votes
    for its FER2013 label (restricted to ``fer2013_vote_classes``), normalised.

    Raises:
        DataError: the data carries no FER2013 labels (synthetic data, an old pack).
    """
    from exprsim.data.fer import FERPLUS_CLASSES
    from exprsim.errors import DataError

    if full.fer2013 is None or full.votes is None:
        raise DataError("fer2013_vote needs FER+ data with its FER2013 labels")
    votes = full.votes[idx].astype(np.float64)
    label = full.fer2013[idx]
    allowed = np.zeros(len(FERPLUS_CLASSES), bool)
    names = cfg.fer2013_vote_classes or tuple(FER2013_TO_FERPLUS.values())
    allowed[[FERPLUS_CLASSES.index(n) for n in names]] = True
    voting = (label >= 0) & allowed[np.clip(label, 0, None)]
    votes[np.flatnonzero(voting), label[voting]] += cfg.fer2013_vote
    return (votes / votes.sum(axis=1, keepdims=True)).astype(np.float32)


def _load_full(cfg: TrainConfig) -> FerArrays:
    """Every face a run with ``cfg`` loads, before the hold-out split."""
    if cfg.data == "synthetic":
        return synthetic_votes(cfg.max_train or 512, seed=cfg.seed)
    if cfg.data != "ferplus":
        raise ArgumentError(f"unknown data {cfg.data!r}; expected 'ferplus' or 'synthetic'")
    fer13: np.ndarray | None
    if cfg.data_dir and str(cfg.data_dir).endswith(".npz"):
        images, votes = load_packed_ferplus(cfg.data_dir)
        fer13 = load_packed_fer2013(cfg.data_dir)
    else:
        from exprsim.data.fer import load_ferplus

        split = load_ferplus("Training", cfg.data_dir, drop_duplicates_of="PublicTest")
        images, votes, fer13 = split.images, split.votes, fer2013_as_ferplus(split.emotion)
    if cfg.max_train:
        images, votes = images[: cfg.max_train], votes[: cfg.max_train]
        fer13 = None if fer13 is None else fer13[: cfg.max_train]
    dist = (votes / votes.sum(axis=1, keepdims=True)).astype(np.float32)
    return FerArrays(images, dist, votes, fer2013=fer13)


def pixel_digest(images: np.ndarray) -> str:
    """Hex digest of a whole image array (which faces, in which order)."""
    import hashlib

    return hashlib.blake2b(np.ascontiguousarray(images).tobytes(), digest_size=16).hexdigest()


def data_digest(train: FerArrays, val: FerArrays, labels: np.ndarray | None = None) -> str:
    """Hex digest of what a run trains and validates on: both parts' faces and targets,
    and the labels given to :func:`~exprsim.training.ferplus.train`. A checkpoint keeps it,
    and a resumed run checks it: the same config over changed data (another FER+ file, a
    re-made pack, other sub-class labels) would go on training another set, and its
    validation part, drawn by row, would then hold faces already trained on."""
    from exprsim.training.run import array_digest

    return array_digest(train.images, train.train_target, val.images, val.dist, labels)


def make_teacher_targets(models: list[str | Path], cfg: TrainConfig, out: str | Path) -> Path:
    """Distillation targets: the mean emotion distribution of ``models`` (folders of
    networks with their own classifier, e.g. earlier runs of this recipe) on every face a run
    with ``cfg`` loads, and each teacher's shipped vector (its own readout), saved with a hash
    of those faces (``.npz``: ``dist`` (N, 8), ``vecs`` (N, T, D) float16, ``digest``).
    The teachers run on ``cfg.device``."""
    from exprsim.models.embedder import load_model

    if not models:
        raise ArgumentError("make_teacher_targets needs at least one model")
    teachers = [load_model(str(m), device=cfg.device, batch_size=512) for m in models]
    for m, emb in zip(models, teachers, strict=True):  # every teacher checked before any work
        if not hasattr(emb.model, "parts"):
            raise ArgumentError(f"{m}: the network has no emotion classifier to distil from")
    full = _load_full(cfg)
    vecs, probs = zip(*(emb.embed_with_proba(full.images) for emb in teachers), strict=True)
    arrays = {
        "dist": np.mean(probs, axis=0).astype(np.float32),
        "vecs": np.stack(vecs, axis=1).astype(np.float16),
        "digest": np.array(pixel_digest(full.images)),
    }
    return _save_npz_whole(out, arrays, compressed=False)


def _open_teacher_file(path: str | Path, images: np.ndarray, key: str) -> np.ndarray:
    from exprsim.errors import DataError

    if not Path(path).exists():
        where = "" if Path(path).is_absolute() else f", relative to {Path.cwd()}"
        raise DataError(
            f"{path}: no such file (the config's teacher{where}; make it with "
            "exprsim.training.ferplus_data.make_teacher_targets(models, cfg, out) in Python, "
            "or set teacher to null)"
        )
    try:
        with np.load(path) as z:
            arr, digest = z[key].astype(np.float32), str(z["digest"])
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"{path}: not a teacher-target file with {key!r} ({exc})") from exc
    if len(arr) != len(images) or digest != pixel_digest(images):
        raise DataError(
            f"{path}: made for other faces than this config loads (make it again with "
            "exprsim.training.ferplus_data.make_teacher_targets and the same data settings)"
        )
    return arr


def load_teacher_targets(path: str | Path, images: np.ndarray) -> np.ndarray:
    """``(N, 8)`` teacher distributions for ``images`` (checked against the file's hash)."""
    from exprsim.errors import DataError

    dist = _open_teacher_file(path, images, "dist")
    if dist.shape[1:] != (8,):
        raise DataError(f"{path}: 'dist' has shape {dist.shape}, expected (N, 8)")
    return dist


def load_teacher_vectors(path: str | Path, images: np.ndarray) -> np.ndarray:
    """``(N, T, D)`` vectors of the file's T teachers for ``images`` (hash-checked)."""
    from exprsim.errors import DataError

    vecs = _open_teacher_file(path, images, "vecs")
    if vecs.ndim != 3:
        raise DataError(f"{path}: 'vecs' has shape {vecs.shape}, expected (N, T, D)")
    return vecs


def split_seed(cfg: TrainConfig) -> int:
    return cfg.seed if cfg.split_seed is None else cfg.split_seed


def pack_ferplus(out: str | Path, data_dir: str | Path | None = None) -> Path:
    """Write the FER+ Training faces a run loads (PublicTest duplicates dropped) to one
    ``.npz`` (``images`` (N, 48, 48) uint8, ``votes`` (N, 8) float32, ``rows`` (N,) int64,
    ``fer2013`` (N,) int64 FER+ class of each FER2013 label), for a machine without
    ``../shared``: point ``data_dir`` at it. Same faces, same order."""
    from exprsim.data.fer import load_ferplus

    split = load_ferplus("Training", data_dir, drop_duplicates_of="PublicTest")
    arrays = {
        "images": split.images,
        "votes": split.votes,
        "rows": split.rows,
        "fer2013": fer2013_as_ferplus(split.emotion),
    }
    return _save_npz_whole(out, arrays, compressed=True)


def _save_npz_whole(out: str | Path, arrays: dict[str, np.ndarray], compressed: bool) -> Path:
    """``arrays`` as an ``.npz`` at ``out`` (``.npz`` added when missing, as ``np.savez``
    does), whole or not at all: a failure midway leaves the earlier file as it was (it was
    truncated first)."""
    from exprsim.io import save_npz, write_atomically

    out = Path(out)
    if out.suffix != ".npz":
        out = out.with_name(out.name + ".npz")
    return write_atomically(out, lambda fh: save_npz(fh, arrays, compressed=compressed))


def load_packed_ferplus(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(images, votes)`` from :func:`pack_ferplus`'s file (shapes checked)."""
    from exprsim.errors import DataError

    try:
        with np.load(path) as z:
            images, votes = z["images"], z["votes"].astype(np.float32)
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"{path}: not a packed FER+ file ({exc})") from exc
    if images.ndim != 3 or images.dtype != np.uint8 or votes.shape != (len(images), 8):
        raise DataError(
            f"{path}: expected uint8 images (N, H, W) and votes (N, 8), "
            f"got {images.dtype} {images.shape} and {votes.shape}"
        )
    return images, votes


def load_packed_fer2013(path: str | Path) -> np.ndarray | None:
    """The FER+ class indices of the FER2013 labels in a pack (``fer2013``, as
    :func:`fer2013_as_ferplus` gives them), or ``None`` for a pack made without them."""
    with np.load(path) as z:
        return z["fer2013"].astype(np.int64) if "fer2013" in z.files else None


# --------------------------------------------------------------------------- triplets


def batch_triplets(dist: np.ndarray, n: int, threshold: float, rng: np.random.Generator) -> Any:
    """Clear vote triplets among one batch's faces (rule of :mod:`exprsim.data.triplets`).

    Returns a :class:`~exprsim.data.triplets.TripletSet` indexing the batch with equal type
    shares, or ``None`` when the batch cannot supply ``n`` clear triplets.
    """
    from exprsim.data.triplets import mine_vote_triplets
    from exprsim.errors import DataError

    try:
        return mine_vote_triplets(dist, dist.argmax(1), n, rng, threshold, max_rounds=20)
    except DataError:
        return None


def validation_triplets(dist: np.ndarray, cfg: TrainConfig) -> Any:
    """The validation triplets of a run: ``cfg.val_triplet_draws`` draws pooled.

    Each draw has the same size and type shares, so accuracy over the pooled set is the mean
    of the draws' accuracies. ``None`` when the faces cannot supply a draw.
    """
    from exprsim.data.triplets import TripletSet

    n = cfg.val_triplets or min(3000, len(dist))
    draws = [
        batch_triplets(dist, n, cfg.triplet_threshold, np.random.default_rng(seed))
        for seed in range(cfg.val_triplet_draws)
    ]
    if not draws or any(d is None for d in draws):
        return None
    if len(draws) == 1:
        return draws[0]
    fields = ("i", "j", "k", "odd", "ttype", "gap")
    return TripletSet(*(np.concatenate([getattr(d, f) for d in draws]) for f in fields))
