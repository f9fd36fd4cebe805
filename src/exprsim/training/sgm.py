"""SGM + sub-classes: Algorithm 2 of Marrero Fernandez et al. as a learner.

"Deep Metric Structured Learning for Facial Expression Recognition" (Sec. 3.2, Algorithm 2
"Deep Gaussian Mixture Sub-space Learning"):

* :func:`deep_gaussian_mixture_subspaces` — for levels ``l = 1..L`` train with SGM on the
  current labels, embed every face, split each *original* class into ``l`` components by EM
  (:func:`exprsim.apps.subclasses.split_classes`), relabel (class ``j``'s components get ids
  ``j*l .. j*l + l - 1``), go on. Training is a callback, so any trainer (or a tiny test
  model) plugs in;
* :func:`ferplus_sgm_trainer` — the FER+ callback over :func:`exprsim.training.ferplus.train`,
  each level starting from the previous level's weights, on the faces the base config keeps
  (:func:`~exprsim.training.ferplus_data.load_data`: its hold-out, ``min_votes``,
  ``val_drop_twins``);
* :func:`train_subspaces` — the ``sgm-subspaces`` recipe (:class:`SubspaceTrainConfig`):
  levels in ``out_dir/level<l>``, the labels of every level in ``subspaces.npz`` (with
  ``rows``: which of the faces as loaded they belong to) and a summary in
  ``subspaces.json``; the last level's folder is a loadable model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from exprsim.apps.subclasses import SubclassSplit, check_covariance_type, split_classes
from exprsim.config import config_hash
from exprsim.equality import array_equality
from exprsim.errors import ArgumentError, ExprsimError, require_positive_int
from exprsim.io import save_npz, write_atomically
from exprsim.metrics import class_ids
from exprsim.training.ferplus import train
from exprsim.training.ferplus_config import TrainConfig
from exprsim.training.run import RunFolder, exclusive_run

log = logging.getLogger(__name__)

#: ``train_fn(level, labels (N,) int64) -> (N, D) embeddings of the same faces``.
TrainFn = Callable[[int, np.ndarray], np.ndarray]


@array_equality
@dataclass(frozen=True)
class SubspaceLevel:
    """One level of Algorithm 2: ``labels`` ``(N,)`` after splitting each class into
    ``level`` components of the embeddings trained on the previous labels."""

    level: int
    labels: np.ndarray
    split: SubclassSplit


@array_equality
@dataclass(frozen=True)
class SubspaceResult:
    """Result of :func:`deep_gaussian_mixture_subspaces`.

    Attributes:
        levels: one :class:`SubspaceLevel` per level, ``1..L``.
        embeddings: ``(N, D)`` embeddings of the last level's trained model.
    """

    levels: tuple[SubspaceLevel, ...]
    embeddings: np.ndarray

    @property
    def labels(self) -> np.ndarray:
        """``(N,)`` final sub-class labels (class ``j``, component ``g``: ``j * L + g``)."""
        return self.levels[-1].labels

    @property
    def parent(self) -> np.ndarray:
        return self.levels[-1].split.parent


def deep_gaussian_mixture_subspaces(
    labels: np.ndarray,
    train_fn: TrainFn,
    levels: int = 5,
    covariance_type: str = "spherical",
    seed: int = 0,
) -> SubspaceResult:
    """Algorithm 2 (Deep Gaussian Mixture Sub-space Learning).

    For ``l = 1..levels``: ``Z = train_fn(l, Y_hat)`` (train with SGM on the current labels
    and embed all faces), then every original class ``j`` is split by EM into ``l``
    components and its faces get labels ``g + j * l`` (the paper's ``g + k, k += l``).
    Level 1 is the plain SGM model (one component per class).

    Args:
        labels: ``(N,)`` int original class labels ``Y``.
        train_fn: trains on ``(level, labels)`` and returns ``(N, D)`` embeddings.
        levels: ``L`` (paper: 5, i.e. 5 sub-classes per class, 40 for FER+).
        covariance_type, seed: passed to :func:`split_classes`.
    """
    # class ids as split_classes takes them (0.5 was cut to 0, "a" a raw ValueError)
    y = class_ids(labels, "labels", ExprsimError)
    levels = require_positive_int(levels, "levels")
    check_covariance_type(covariance_type)
    current = y.copy()
    done: list[SubspaceLevel] = []
    z = np.zeros((len(y), 0))
    for level in range(1, levels + 1):
        z = _embeddings_of(train_fn(level, current), len(y), level)
        split = split_classes(
            z, y, n_components=level, covariance_type=covariance_type, stride=level, seed=seed
        )
        current = split.labels
        log.info("level %d: %d sub-classes", level, split.n_subclasses)
        done.append(SubspaceLevel(level, current, split))
    return SubspaceResult(tuple(done), z)


def _embeddings_of(z: Any, n: int, level: int) -> np.ndarray:
    """What ``train_fn`` returned at ``level``, as ``(n, D)`` embeddings, or one line."""
    try:
        arr = np.asarray(z, dtype=np.float64)
    except (TypeError, ValueError):
        arr = np.zeros(0)
    if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] == 0:
        got = type(z).__name__ if arr.ndim != 2 else f"{arr.shape[0]} x {arr.shape[1]}"
        raise ExprsimError(
            f"train_fn must return ({n}, D) embeddings of the faces (level {level}); got {got}"
        )
    return np.asarray(z)


class FerplusLevelTrainer:
    """The :data:`TrainFn` of :func:`ferplus_sgm_trainer` (module docstring).

    Its faces are those the base config keeps (training and validation), in the order they
    are loaded: ``labels`` and the returned embeddings are rows of them.

    Attributes:
        rows: ``(K,)`` which of the faces as loaded each face is (increasing).
        epochs_run: epochs the levels trained so far (0 for levels already finished).
    """

    def __init__(
        self,
        cfg: TrainConfig,
        out_root: Path,
        images: np.ndarray,
        rows: np.ndarray,
        n_loaded: int,
        progress: bool = True,
        n_classes: int = 8,
    ) -> None:
        self.cfg, self.root, self.images, self.rows = cfg, out_root, images, rows
        self.n_loaded, self.progress, self.n_classes = n_loaded, progress, n_classes
        self.epochs_run = 0

    def __call__(self, level: int, labels: np.ndarray) -> np.ndarray:
        from exprsim.models.embedder import load_model
        from exprsim.training.ferplus import embed_array

        labels = np.asarray(labels, np.int64)
        if labels.shape != self.rows.shape:
            raise ExprsimError(f"labels must have shape {self.rows.shape}, got {labels.shape}")
        n_labels = len(np.unique(labels))
        cfg = self.cfg
        lcfg = replace(
            cfg,
            objective="sgm",
            per_class=max(2, cfg.per_class * self.n_classes // max(n_labels, 1)),
            init_from=self._previous(level) if level > 1 else cfg.init_from,
        )
        every = np.full(self.n_loaded, -1, np.int64)  # faces the run leaves out: never read
        every[self.rows] = labels
        out = self.root / f"level{level}"
        self.epochs_run += train(lcfg, out, progress=self.progress, labels=every).epochs_run
        model = load_model(str(out)).model
        return embed_array(model, self.images, cfg.preprocess)

    def _previous(self, level: int) -> str:
        """``init_from`` of ``level`` (> 1): level ``level - 1``'s folder as an absolute
        path, so that the same run resumes whatever the spelling of ``--out`` or the working
        folder; a level whose run saved the same folder spelt otherwise (runs of earlier
        versions saved it as given) keeps that spelling."""
        prev = (self.root / f"level{level - 1}").resolve()
        saved = self.root / f"level{level}" / "train_config.json"
        try:
            old = RunFolder(saved.parent).saved_config(TrainConfig).init_from
        except (OSError, ValueError):
            return str(prev)
        if isinstance(old, str) and Path(old).resolve() == prev:
            return old
        return str(prev)


def ferplus_sgm_trainer(
    cfg: Any, out_root: str | Path, progress: bool = True, n_classes: int = 8
) -> tuple[FerplusLevelTrainer, np.ndarray]:
    """A :data:`TrainFn` training SGM with :func:`exprsim.training.ferplus.train`, and the labels ``Y``.

    Level ``l`` trains ``cfg`` (``objective="sgm"`` is forced) into ``out_root/level<l>``,
    starting from level ``l-1``'s weights, on the given labels (one-hot), with
    ``per_class = max(2, cfg.per_class * n_classes // n_labels)`` so the batch size stays
    about that of level 1; it returns the embeddings of the faces.

    The faces are those :func:`~exprsim.training.ferplus_data.load_data` keeps with ``cfg``
    (training and validation faces, after ``min_votes`` and ``val_drop_twins``), in the
    order they are loaded; each level's ``train`` gets every face's own label.

    Returns:
        ``(train_fn, labels)``: labels are the majority votes of those faces. Reads the data
        and checks the batch size and the network; writes nothing.
    """
    from exprsim.training.ferplus import check_batch_size, check_readout_faces, make_network
    from exprsim.training.ferplus_data import load_data

    tr, val = load_data(cfg)
    check_batch_size(cfg, len(tr.images))
    # model_kwargs and init_from fail here, before any folder is claimed (init_from only for
    # a first level that has not started: a checkpoint's weights replace it)
    started = (Path(out_root) / "level1" / "state.pt").is_file()
    net = make_network(cfg, init=not started)
    check_readout_faces(cfg, net, len(tr.images), len(val.images))  # as every level would
    assert tr.rows is not None and val.rows is not None  # load_data sets them
    rows = np.concatenate([tr.rows, val.rows])
    order = np.argsort(rows, kind="stable")  # the faces kept, in load order
    images = np.concatenate([tr.images, val.images])[order]
    majority = np.concatenate([tr.dist.argmax(1), val.dist.argmax(1)]).astype(np.int64)[order]
    train_fn = FerplusLevelTrainer(
        cfg, Path(out_root), images, rows[order], tr.n_loaded, progress, n_classes
    )
    return train_fn, majority


# --------------------------------------------------------------------------- discovery


def _sgm_base() -> TrainConfig:
    return TrainConfig(objective="sgm", sampler="balanced", optimizer="adam", lr=1e-3)


#: Most levels of an ``sgm-subspaces`` run (each trains ``base.epochs`` and splits every
#: class once more; the paper's FER+ run has 5): 10**9 was taken and trained on for good
MAX_LEVELS = 1000


@dataclass(frozen=True)
class SubspaceTrainConfig:
    """An ``sgm-subspaces`` run (saved as ``train_config.json``).

    Attributes:
        base: the FER+ SGM training of every level (``objective`` is forced to ``"sgm"``).
        levels: ``L`` (paper: 5 sub-classes per class, 40 for FER+).
        covariance_type: of the EM split (``"spherical"``: SGM's isotropic Gaussians).
    """

    __hash__ = config_hash  # equal configs hash alike (dict fields)

    base: TrainConfig = field(default_factory=_sgm_base)
    levels: int = 5
    covariance_type: str = "spherical"

    def __post_init__(self) -> None:
        # checked when the config is made or read back, not at the second level's EM split
        levels = self.levels
        if isinstance(levels, bool) or not isinstance(levels, int) or not 1 <= levels <= MAX_LEVELS:
            raise ArgumentError(f"levels must be an integer in [1, {MAX_LEVELS}], got {levels!r}")
        check_covariance_type(self.covariance_type)


@dataclass(frozen=True)
class SubspaceTrainResult:
    out_dir: Path
    epochs_run: int
    seconds: float
    n_subclasses: int


def _check_levels(cfg: SubspaceTrainConfig, run: RunFolder) -> None:
    """Refuse fewer levels than the folder's run has (a run cannot be shortened)."""
    if not (run.dir / "train_config.json").is_file():
        return
    saved = run.saved_config(SubspaceTrainConfig, "sgm-subspaces").levels
    if cfg.levels < saved:
        raise ArgumentError(
            f"{run.dir} holds a run of {saved} levels; {cfg.levels} is fewer (a run cannot "
            "be shortened: use a new --out)"
        )


@exclusive_run
def train_subspaces(
    cfg: SubspaceTrainConfig, out_dir: str | Path, progress: bool = True
) -> SubspaceTrainResult:
    """Run Algorithm 2 on FER+ (module docstring); finished levels are resumed, not redone.

    The base config, its data and its network are checked before the folder is claimed;
    the result's ``epochs_run`` counts the epochs trained by this call.
    """
    from exprsim.training.ferplus import _check_choices, check_network

    _check_choices(cfg.base)
    check_network(cfg.base)
    run = RunFolder(out_dir)
    run.check(cfg, ("levels",))  # more levels extend a run: finished ones are resumed
    _check_levels(cfg, run)
    t0 = time.perf_counter()
    train_fn, majority = ferplus_sgm_trainer(cfg.base, run.dir, progress=progress)
    run.claim(cfg, ("levels",))
    res = deep_gaussian_mixture_subspaces(
        majority, train_fn, cfg.levels, cfg.covariance_type, seed=cfg.base.seed
    )
    arrays = {f"level{lv.level}": lv.labels for lv in res.levels}
    arrays.update(parent=res.parent, rows=train_fn.rows)
    # whole or not at all, and no traceback from numpy's archive on a full disk
    write_atomically(run.dir / "subspaces.npz", lambda fh: save_npz(fh, arrays, compressed=True))
    run.write_json("subspaces.json", {f"level{lv.level}": lv.split.to_dict() for lv in res.levels})
    return SubspaceTrainResult(
        run.dir,
        train_fn.epochs_run,
        time.perf_counter() - t0,
        res.levels[-1].split.n_subclasses,
    )


__all__ = [
    "FerplusLevelTrainer",
    "SubspaceLevel",
    "SubspaceResult",
    "SubspaceTrainConfig",
    "SubspaceTrainResult",
    "TrainFn",
    "deep_gaussian_mixture_subspaces",
    "ferplus_sgm_trainer",
    "train_subspaces",
]
