"""Training loop for expression embeddings on FER+ vote distributions.

Each step embeds one batch of augmented FER2013 crops and combines three losses:

* ``kl``: KL(vote distribution || softmax(cosine classifier(embedding))) — soft-label
  classification through a training-only head (:class:`~exprsim.models.default.CosineClassifier`);
* ``triplet``: FECNet's two-hinge loss (per-type margins 0.1 / 0.2 / 0.2) on vote triplets
  mined inside the batch (odd one out decided by the Hellinger distances of the three vote
  distributions; kept when clear: the rule of :mod:`exprsim.data.triplets`), balanced over the three
  triplet types as FECNet's 30/30/30 batches;
* ``pair``: embedding distances pulled towards ``sqrt(2)`` x Hellinger distances of votes.

``objective="sgm"`` replaces that mix by the Structured Gaussian Manifold loss
(:mod:`exprsim.losses.sgm`: per-batch class Gaussians, posterior matched to the vote
distribution or the one-hot majority label, plus the mean-norm term), usually with
``sampler="balanced"`` (:class:`~exprsim.data.sampler.BalancedClassSampler`: ``per_class``
faces of every class per batch) and ``optimizer="adam"``, as in Marrero Fernandez et al.

Checkpoints (``last.safetensors`` + ``state.pt``, loadable with ``weights_only=True``),
``train_config.json``, ``config.json`` (the :class:`EmbedderConfig` for
:func:`exprsim.load_model`), ``model.safetensors`` and ``metrics.jsonl`` are written to
the output folder; a re-run with the same folder resumes from the last finished epoch.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from exprsim.config import check_ranges, seed_range
from exprsim.errors import ArgumentError
from exprsim.io import model_being_written, write_atomically, writing_model
from exprsim.models.embedder import (
    EmbedderConfig,
    PreprocessConfig,
    normalize_input,
    resize_crops,
    resolve_device,
)
from exprsim.progress import progress_bar
from exprsim.training.ferplus_config import (
    MAX_BATCH,
    MAX_VALIDATION_DRAWS,
    TrainConfig,
    TrainResult,
)
from exprsim.training.ferplus_data import (
    FER2013_TO_FERPLUS,
    FerArrays,
    batch_triplets,
    data_digest,
    load_data,
    validation_triplets,
)
from exprsim.training.run import (
    MAX_EMBEDDING_DIM,
    MAX_SYNTHETIC,
    MAX_TORCH_THREADS,
    MAX_TRIPLETS_PER_TYPE,
    RunFolder,
    brief,
    build_network,
    check_same_data,
    check_weights,
    exclusive_run,
    export_embedder,
    foreign_checkpoint,
    read_train_config,
    setup_torch,
)

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- augmentation


def flip_batch(x: Any, gen: Any) -> Any:
    """Mirror a random half of ``(B, C, H, W)`` crops left-right."""
    import torch

    flip = (torch.rand(x.shape[0], generator=gen) < 0.5).to(x.device)
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)


# --------------------------------------------------------------------------- loop


def _to_input(
    images: np.ndarray,
    pre: PreprocessConfig,
    augment: Any = None,
    device: Any = None,
) -> Any:
    """uint8 crops -> network input through the library's one preprocessing path.

    ``augment``, if given, maps the grey-level batch ``(B, C, S, S)`` to an augmented one
    before normalisation (training only); ``device``: where the batch goes first (the
    augmentation runs there).
    """
    import torch

    x = torch.from_numpy(resize_crops(images, pre))
    if device is not None and str(device) != "cpu":
        x = x.to(device, non_blocking=True)
    if augment is not None:
        x = augment(x)
    return normalize_input(x, pre).contiguous(memory_format=torch.channels_last)


def train_side(cfg: TrainConfig, epoch: int) -> int | None:
    """The side training batches are resized to in ``epoch`` (0-based) under
    ``cfg.size_schedule``, or ``None`` for the model's own input size."""
    side = None
    for first, s in cfg.size_schedule:
        if epoch >= first:
            side = s
    return side


def resize_batch(x: Any, side: int) -> Any:
    """Resize a grey-level batch ``(B, C, H, W)`` to ``(B, C, side, side)`` (bilinear,
    antialiased when shrinking); unchanged when it already has that size."""
    import torch.nn.functional as F

    if x.shape[-1] == side and x.shape[-2] == side:
        return x
    return F.interpolate(
        x, size=(side, side), mode="bilinear", align_corners=False, antialias=side < x.shape[-1]
    )


def _with_side(aug: Any, side: int | None) -> Any:
    if side is None:
        return aug
    if aug is None:
        return functools.partial(resize_batch, side=side)
    return lambda x: resize_batch(aug(x), side)


def _lr_at(cfg: TrainConfig, epoch_pos: float) -> float:
    if cfg.lr_schedule == "constant":
        return cfg.lr
    if epoch_pos < cfg.warmup_epochs:
        return cfg.lr * max(epoch_pos / cfg.warmup_epochs, 0.01)
    span = max(cfg.epochs - cfg.warmup_epochs, 1e-9)
    p = min((epoch_pos - cfg.warmup_epochs) / span, 1.0)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * p))


def _model_device(model: Any) -> Any:
    return next(iter(model.parameters())).device


def embed_array(
    model: Any, images: np.ndarray, pre: PreprocessConfig, batch: int = 512
) -> np.ndarray:
    """Embed ``(N, 48, 48)`` uint8 training-format crops with ``model`` in eval mode."""
    import torch

    model.eval()
    out = []
    dev = _model_device(model)
    with torch.inference_mode():
        for s in range(0, len(images), batch):
            out.append(model(_to_input(images[s : s + batch], pre, device=dev)).cpu().numpy())
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 16), np.float32)


def _parts_array(
    model: Any, images: np.ndarray, pre: PreprocessConfig, batch: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """``(e, p)`` of a model with its own classifier (``exprnet_v``), in eval mode."""
    import torch

    model.eval()
    es, ps = [], []
    dev = _model_device(model)
    with torch.inference_mode():
        for s in range(0, len(images), batch):
            e, p = model.parts(_to_input(images[s : s + batch], pre, device=dev))
            es.append(e.cpu().numpy())
            ps.append(p.cpu().numpy())
    return np.concatenate(es), np.concatenate(ps)


def readout_score(
    z_train: np.ndarray,
    train_labels: np.ndarray,
    z_val: np.ndarray,
    val_labels: np.ndarray,
    trip: Any,
) -> dict[str, float]:
    """The readout rule's score of one embedding: validation vote-triplet accuracy on
    ``trip`` (left out when ``None``) + kNN11 accuracy of the validation majority labels
    ``(M,)`` with the training vectors ``(N, D)`` and labels ``(N,)`` as reference."""
    from exprsim.metrics import knn_predict, triplet_accuracy

    row: dict[str, float] = {}
    if trip is not None:
        ta = triplet_accuracy(z_val, trip.i, trip.j, trip.k, trip.odd, trip.ttype)
        row["val_triplet_all"] = float(ta["all"])
    pred = knn_predict(z_train, train_labels, z_val, k=11, n_classes=8)
    row["val_knn11_acc"] = float((pred == val_labels).mean())
    row["score"] = row.get("val_triplet_all", 0.0) + row["val_knn11_acc"]
    return row


def choose_readout(
    model: Any,
    train_data: FerArrays,
    val: FerArrays,
    cfg: TrainConfig,
    parts: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
) -> list[dict[str, float]]:
    """Try ``cfg.readout_angles`` on the validation faces; keep the best in ``model``.

    Score: validation vote-triplet accuracy + kNN11 accuracy of validation majority labels
    with the training faces as reference. Returns one row per angle. ``parts``: the model's
    ``((e, p) of train_data, (e, p) of val)`` when the caller already has them (otherwise
    computed here).
    """
    import torch

    if parts is None:
        parts = (
            _parts_array(model, train_data.images, cfg.preprocess),
            _parts_array(model, val.images, cfg.preprocess),
        )
    (e_tr, p_tr), (e_va, p_va) = parts
    trip = validation_triplets(val.dist, cfg)
    rows = []
    for angle in cfg.readout_angles:
        model.readout_angle = float(angle)
        with torch.inference_mode():
            z_tr, z_va = (
                model.readout_from(torch.from_numpy(e), torch.from_numpy(p)).numpy()
                for e, p in ((e_tr, p_tr), (e_va, p_va))
            )
        row = {"angle": float(angle)}
        row |= readout_score(z_tr, train_data.dist.argmax(1), z_va, val.dist.argmax(1), trip)
        rows.append(row)
        log.info("readout angle %s: %s", angle, row)
    best = max(rows, key=lambda r: r["score"])
    model.readout_angle = best["angle"]
    return rows


def load_run_config(run: str | Path) -> TrainConfig:
    """The :class:`TrainConfig` a run folder was trained with (its ``train_config.json``).

    Raises:
        ArgumentError: no such file, a damaged one, or a config of another learner.
    """
    from exprsim.training.registry import config_from_dict

    path = Path(run) / "train_config.json"
    if not path.is_file():
        raise ArgumentError(f"{run}: no train_config.json (not a trainer's run folder)")
    raw = read_train_config(path)
    if not isinstance(raw, dict):
        raise ArgumentError(f"{path}: expected a JSON object of config fields")
    _, cfg = config_from_dict(raw)
    if not isinstance(cfg, TrainConfig):
        raise ArgumentError(f"{run}: not a FER+ vote run ({type(cfg).__name__})")
    return cfg


def rescoring_config(cfg: TrainConfig, draws: int, angles: Sequence[float]) -> TrainConfig:
    """``cfg`` for scoring a finished run's readouts again: its own hold-out, ``draws`` draws
    of 3,000 validation triplets pooled, ``angles`` tried; the run's own training faces
    (its ``data_dir`` when that exists on this machine, else ``../shared``; a run trained
    elsewhere on a packed copy is scored on the same faces from ``../shared``), no teacher
    blend, no start weights."""
    data_dir = cfg.data_dir if cfg.data_dir and Path(cfg.data_dir).exists() else None
    return replace(
        cfg, val_triplets=3000, val_triplet_draws=draws, readout_angles=tuple(angles),
        data_dir=data_dir, teacher=None, init_from=None,
    )  # fmt: skip


def _validate(
    model: Any, head: Any, val: FerArrays, cfg: TrainConfig, labels: np.ndarray | None = None
) -> dict[str, float]:
    import torch

    from exprsim.metrics import knn_search, triplet_accuracy

    major = val.dist.argmax(1)
    out: dict[str, float] = {}
    if hasattr(model, "parts"):  # the network reads its own emotions (exprnet_v)
        e, p = _parts_array(model, val.images, cfg.preprocess)
        with torch.inference_mode():  # the shipped vector from the same forward pass
            emb = model.readout_from(torch.from_numpy(e), torch.from_numpy(p)).numpy()
        out["val_cls_acc"] = float((p.argmax(1) == major).mean())
    elif cfg.objective == "fec" and cfg.kl_weight > 0:
        emb = embed_array(model, val.images, cfg.preprocess)
        with torch.inference_mode():
            logits = head(torch.from_numpy(emb).to(_model_device(head)))
        out["val_cls_acc"] = float((logits.argmax(1).cpu().numpy() == major).mean())
    else:  # no trained classifier head: leave-one-out 11-NN among the validation faces
        emb = embed_array(model, val.images, cfg.preprocess)
        lab = major if labels is None else labels
        k = min(11, len(emb) - 1)
        if k >= 1:
            idx, _ = knn_search(emb, emb, k, exclude_self=True)
            votes = np.apply_along_axis(np.bincount, 1, lab[idx], minlength=int(lab.max()) + 1)
            out["val_knn11_acc"] = float((votes.argmax(1) == lab).mean())
    trip = validation_triplets(val.dist, cfg)
    ta = triplet_accuracy(emb, trip.i, trip.j, trip.k, trip.odd, trip.ttype) if trip else {}
    out.update(
        {f"val_triplet_{key}": float(v) for key, v in ta.items() if isinstance(v, float | int)}
    )
    return out


def _optimizer(cfg: TrainConfig, params: list[Any]) -> Any:
    import torch

    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, nesterov=True, weight_decay=cfg.weight_decay
        )
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ArgumentError(f"unknown optimizer {cfg.optimizer!r}; expected 'sgd', 'adamw' or 'adam'")


def _check_choices(cfg: TrainConfig) -> None:
    choices = {
        "objective": ("fec", "sgm"),
        "sgm_target": ("votes", "majority"),
        "sgm_embedding": ("normalized", "raw"),
        "sampler": ("random", "balanced"),
        "lr_schedule": ("cosine", "constant"),
        "distribution_loss": ("kl", "hellinger"),
        "augment_mode": ("full", "flip"),  # another word trained with the full augmentation
    }
    for name, allowed in choices.items():
        if getattr(cfg, name) not in allowed:
            raise ArgumentError(f"{name} must be one of {allowed}, got {getattr(cfg, name)!r}")
    check_ranges(cfg, {**_run_ranges(cfg), **_step_ranges(cfg)})
    _check_schedules(cfg)


def _run_ranges(cfg: TrainConfig) -> dict[str, tuple[bool, str]]:
    """:func:`~exprsim.config.check_ranges` rules of a run's length, data and sizes."""
    return {
        "epochs": (1 <= cfg.epochs <= 100_000, "in [1, 100000]"),
        "seed": seed_range(cfg.seed),
        "split_seed": seed_range(cfg.split_seed),
        "batch_size": (2 <= cfg.batch_size <= MAX_BATCH, f"in [2, {MAX_BATCH}]"),
        "triplets_per_type": (
            1 <= cfg.triplets_per_type <= MAX_TRIPLETS_PER_TYPE
            or (cfg.triplets_per_type == 0 and cfg.triplet_weight == 0),
            f"in [1, {MAX_TRIPLETS_PER_TYPE}] (0 only with triplet_weight 0)",
        ),
        "lr": (cfg.lr > 0, "> 0"),
        "weight_decay": (cfg.weight_decay >= 0, ">= 0"),
        "val_fraction": (0 <= cfg.val_fraction < 1, "in [0, 1)"),
        "min_votes": (0 <= cfg.min_votes <= 10, "in [0, 10]"),
        "val_triplets": (0 <= cfg.val_triplets <= 1_000_000, "in [0, 1000000]"),
        "val_triplet_draws": (
            1 <= cfg.val_triplet_draws <= MAX_VALIDATION_DRAWS,
            f"in [1, {MAX_VALIDATION_DRAWS}]",
        ),
        "val_drop_twins": (0 <= cfg.val_drop_twins <= 1, "in [0, 1]"),
        "embedding_dim": (
            2 <= cfg.embedding_dim <= MAX_EMBEDDING_DIM,
            f"in [2, {MAX_EMBEDDING_DIM}]",
        ),
        "max_train": (
            cfg.max_train is None
            or 2 <= cfg.max_train <= (MAX_SYNTHETIC if cfg.data == "synthetic" else math.inf),
            f">= 2 (at most {MAX_SYNTHETIC} with data 'synthetic', which makes that many faces)",
        ),
        "swa_epochs": (
            0 <= cfg.swa_epochs <= cfg.epochs,
            f"in [0, epochs] (epochs is {cfg.epochs}: the weight average takes the last "
            "swa_epochs epochs; a shorter --epochs needs a config with fewer swa_epochs)",
        ),
        "mixup_alpha": (cfg.mixup_alpha >= 0, ">= 0"),
        "mixup_p": (0 <= cfg.mixup_p <= 1, "in [0, 1]"),
        "teacher_weight": (0 <= cfg.teacher_weight <= 1, "in [0, 1]"),
        "prob_pair_weight": (cfg.prob_pair_weight >= 0, ">= 0"),
        "teacher_pair_weight": (cfg.teacher_pair_weight >= 0, ">= 0"),
        "class_balance": (0 <= cfg.class_balance <= 2, "in [0, 2]"),
        "fer2013_vote": (0 <= cfg.fer2013_vote <= 10, "in [0, 10]"),
        "fer2013_vote_classes": (
            set(cfg.fer2013_vote_classes) <= set(FER2013_TO_FERPLUS.values()),
            f"FER+ classes with a FER2013 label ({', '.join(FER2013_TO_FERPLUS.values())})",
        ),
    }


def _check_schedules(cfg: TrainConfig) -> None:
    """The size schedule, the readout angles and the settings that need one another."""
    firsts = [first for first, _ in cfg.size_schedule]
    if any(b <= a for a, b in itertools.pairwise(firsts)) or any(
        not 0 <= first < cfg.epochs or not 16 <= side <= 256 for first, side in cfg.size_schedule
    ):
        raise ArgumentError(
            "size_schedule must be (first_epoch, side) pairs with first epochs increasing "
            f"in [0, epochs) and sides in [16, 256], got {cfg.size_schedule!r}"
        )
    if not all(math.isfinite(a) and 0 <= a <= 90 for a in cfg.readout_angles):
        raise ArgumentError(
            f"readout_angles must be finite, in [0, 90] degrees, got {list(cfg.readout_angles)!r}"
        )
    if cfg.mixup_alpha > 0 and cfg.objective != "fec":
        raise ArgumentError("mixup_alpha > 0 needs objective 'fec' (SGM classes do not mix)")
    if cfg.teacher_pair_weight > 0 and (
        not cfg.teacher or cfg.objective != "fec" or cfg.mixup_alpha > 0
    ):
        raise ArgumentError(
            "teacher_pair_weight > 0 needs a teacher file, objective 'fec' and no mixup "
            "(the teachers' distances belong to unmixed faces)"
        )


def _step_ranges(cfg: TrainConfig) -> dict[str, tuple[bool, str]]:
    """:func:`~exprsim.config.check_ranges` rules of a training step's settings: the
    optimiser's, the losses', the balanced sampler's batch (NaN fails every rule)."""
    return {
        "momentum": (
            0 < cfg.momentum < 1 or cfg.optimizer != "sgd",
            "in (0, 1) with optimizer 'sgd' (Nesterov)",
        ),
        # past epochs is a warm-up the run never ends (a smoke run's --epochs 1): allowed
        "warmup_epochs": (0 <= cfg.warmup_epochs < math.inf, "finite and >= 0"),
        "num_threads": (
            0 <= cfg.num_threads <= MAX_TORCH_THREADS,
            f"in [0, {MAX_TORCH_THREADS}] (0: torch's default, one per core)",
        ),
        "kl_weight": (cfg.kl_weight >= 0, ">= 0"),
        "triplet_weight": (cfg.triplet_weight >= 0, ">= 0"),
        "pair_weight": (cfg.pair_weight >= 0, ">= 0"),
        "triplet_threshold": (cfg.triplet_threshold >= 0, ">= 0"),
        "margins": (
            len(cfg.margins) == 3 and all(m >= 0 and math.isfinite(m) for m in cfg.margins),
            "three finite values >= 0 (one, two, three)",
        ),
        "classifier_scale": (
            0 < cfg.classifier_scale < math.inf,
            "> 0 (the cosine classifier's fixed scale)",
        ),
        "pair_scale": (0 < cfg.pair_scale < math.inf, "> 0"),
        "sgm_sigma": (0 < cfg.sgm_sigma < math.inf, "> 0"),
        "sgm_norm_weight": (cfg.sgm_norm_weight >= 0, ">= 0"),
        "teacher_pair_angle": (0 <= cfg.teacher_pair_angle <= 90, "in [0, 90] degrees"),
        "per_class": (
            1 <= cfg.per_class <= MAX_BATCH // 8,
            f"in [1, {MAX_BATCH // 8}] (x 8 classes: a batch of at most {MAX_BATCH} faces)",
        ),
    }


def _raw_output_hook(model: Any) -> dict[str, Any]:
    """Capture the pre-normalisation embedding (output of ``model.bn``) on every forward."""
    layer = getattr(model, "bn", None)
    if layer is None:
        raise ArgumentError(
            "sgm_embedding='raw' needs a model whose `bn` layer feeds the L2 normalisation "
            "(as exprnet_s)"
        )
    store: dict[str, Any] = {}

    def hook(_mod: Any, _inp: Any, output: Any) -> None:
        store["raw"] = output

    layer.register_forward_hook(hook)
    return store


def _check_swa_resume(cfg: TrainConfig, done: int, swa_n: int) -> None:
    """Refuse a resume whose weight-average window does not match the snapshots taken."""
    expected = max(0, done - max(0, cfg.epochs - cfg.swa_epochs)) if cfg.swa_epochs else 0
    if expected != swa_n:
        if swa_n:  # the window started after epoch done - swa_n: keep it there
            fits = f"swa_epochs={cfg.epochs - (done - swa_n)}"
        else:  # no snapshot yet: the window must start after the epochs done
            fits = f"swa_epochs <= {cfg.epochs - done}" if cfg.epochs > done else "swa_epochs=0"
        raise ArgumentError(
            f"resuming after epoch {done} with epochs={cfg.epochs}, swa_epochs="
            f"{cfg.swa_epochs} needs {expected} averaged snapshots, the checkpoint holds "
            f"{swa_n}; keep the window's start where it was: use {fits}"
        )


def _swa_update(avg: dict[str, Any] | None, n: int, model: Any) -> tuple[dict[str, Any], int]:
    """Fold the model's current weights into the running average of ``n`` snapshots."""
    cur = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    if avg is None:
        return cur, 1
    for k, v in cur.items():
        if v.is_floating_point():
            avg[k] += (v - avg[k]) / (n + 1)
        else:  # counters (BatchNorm num_batches_tracked): the latest
            avg[k] = v
    return avg, n + 1


def _on(obj: Any, device: Any) -> Any:
    """``obj`` (tensors in nested dicts / lists) with every tensor moved to ``device``."""
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: _on(v, device) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_on(v, device) for v in obj)
    return obj


def _recompute_bn(model: Any, data: FerArrays, cfg: TrainConfig, batch: int = 256) -> None:
    """BatchNorm running statistics of ``model`` from one augmented pass over ``data``.

    Averaged weights need their own statistics (SWA); the cumulative mean over all batches
    replaces the exponential one. Deterministic: the augmentation stream is seeded.
    """
    import torch

    from exprsim.data.augment import augment_torch

    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    aug = None
    if cfg.augment and cfg.augment_mode == "full":
        aug = functools.partial(
            augment_torch, rng=np.random.default_rng((cfg.seed, 10**6)), cfg=cfg.augmentation
        )
    model.train()
    dev = _model_device(model)
    # dropout in train mode draws from torch's RNG: seeded here, so the statistics do not
    # depend on whether the run trained its last epoch in this process or was resumed
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(cfg.seed * 1000 + 10**6)
        for s in range(0, len(data.images), batch):
            model(_to_input(data.images[s : s + batch], cfg.preprocess, aug, dev))
    for m, mom in zip(bns, momenta, strict=True):
        m.momentum = mom
    model.eval()


@dataclass
class _Setup:
    """What one FER+ run trains with (built by :func:`_build`)."""

    model: Any
    head: Any
    own_head: bool  # the network reads its own emotion logits (exprnet_v)
    opt: Any
    train_data: FerArrays
    val_data: FerArrays
    train_labels: np.ndarray | None
    val_labels: np.ndarray | None
    sampler: Any
    raw_store: dict[str, Any] | None
    losses: dict[str, Any]
    class_weights: np.ndarray | None = None  # (C,) per-class weights of the per-face term
    data_digest: str = ""  # :func:`data_digest` of the run's data, kept in its checkpoints


def class_balance_weights(targets: np.ndarray, power: float) -> np.ndarray:
    """Per-class weights ``m_c ** -power`` (``m_c``: column sums of ``targets`` ``(N, C)``),
    scaled so that the faces' weights ``targets @ w`` average 1; ``(C,)`` float64.
    A class with no mass gets weight 0 (no face carries it)."""
    t = np.asarray(targets, np.float64)
    t = t / np.maximum(t.sum(axis=1, keepdims=True), 1e-12)
    mass = t.sum(axis=0)
    w = np.zeros_like(mass)
    w[mass > 0] = mass[mass > 0] ** -float(power)
    return w / float((t @ w).mean())


def _split_labels(
    labels: np.ndarray | None, train_data: FerArrays, val_data: FerArrays
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The training and validation faces' labels, from ``labels`` of every face as loaded
    (the ``rows`` :func:`load_data` kept: its hold-out and filters)."""
    if labels is None:
        return None, None
    labels = np.asarray(labels, np.int64)
    n = train_data.n_loaded
    if train_data.rows is None or val_data.rows is None or labels.shape != (n,):
        raise ArgumentError(
            f"labels must have shape ({n},), one per face the config loads, got {labels.shape}"
        )
    tr, val = labels[train_data.rows], labels[val_data.rows]
    if (tr < 0).any() or (val < 0).any():
        raise ArgumentError("labels must be >= 0 for every face the run keeps")
    return tr, val


def _param_groups(cfg: TrainConfig, model: Any, head: Any, own_head: bool) -> list[Any]:
    params = list(model.parameters()) + ([] if own_head else list(head.parameters()))
    if not cfg.decay_weights_only:
        return params
    named = list(model.named_parameters()) + (
        [] if own_head else [(f"head.{n}", q) for n, q in head.named_parameters()]
    )
    decay = [q for n, q in named if q.ndim > 1 and not n.endswith(("cls_w", "head.weight"))]
    keep = {id(q) for q in decay}
    return [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": [q for _, q in named if id(q) not in keep], "weight_decay": 0.0},
    ]


def _load_init(model: Any, cfg: TrainConfig) -> None:
    """Load ``cfg.init_from``'s weights (``model.safetensors``, else ``last.safetensors``)
    into ``model``.

    Raises:
        ValueError: naming ``init_from``: no weights there, or a file that is not
            safetensors, or weights of another network or shape.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    init = Path(str(cfg.init_from))
    found = [init / n for n in ("model.safetensors", "last.safetensors") if (init / n).is_file()]
    if not found:
        where = (
            "" if init.is_absolute() else f" (relative to the working folder: {init.absolute()})"
        )
        raise ArgumentError(
            f"init_from {init}: no model.safetensors or last.safetensors there{where}"
        )
    if model_being_written(init):
        raise ArgumentError(
            f"init_from {init}: the command writing its model stopped before it finished "
            "(or is writing it now): run it again first"
        )
    try:
        model.load_state_dict(load_file(str(found[0])))
    except (SafetensorError, RuntimeError, OSError, ValueError, KeyError) as exc:
        raise ArgumentError(
            f"init_from {found[0]}: not weights of model {cfg.model!r} with this config's "
            f"embedding_dim and model_kwargs ({brief(exc)})"
        ) from exc
    log.info("initialised from %s", init)


def make_network(cfg: TrainConfig, init: bool = True) -> Any:
    """The network ``cfg`` trains, on the CPU: built from ``model``, ``embedding_dim`` and
    ``model_kwargs``, and started from ``init_from`` when set and ``init`` (a run resuming
    from its checkpoint overwrites those weights: it does not need ``init_from`` any more).

    Raises:
        ValueError: naming ``model_kwargs`` or ``init_from``, when they do not fit.
    """
    model = build_network(cfg.model, cfg.embedding_dim, cfg.model_kwargs)
    if cfg.init_from and init:
        _load_init(model, cfg)
    return model


def check_batch_size(cfg: TrainConfig, n_train: int) -> None:
    """Refuse a ``batch_size`` no epoch could fill (``sampler="random"`` takes
    ``n_train // batch_size`` steps per epoch: none)."""
    if cfg.sampler == "random" and n_train < cfg.batch_size:
        raise ArgumentError(
            f"batch_size {cfg.batch_size} is larger than the {n_train} training faces: an "
            "epoch would take no step; use a smaller batch_size or more faces"
        )


def check_network(cfg: TrainConfig) -> None:
    """Refuse an unknown network, or one whose input channels the preprocessing does not
    give (``preprocess.grayscale``: 1 channel, else 3), before any data or folder.

    Raises:
        ModelError: one line naming the model and the channels.
    """
    from exprsim.errors import ModelError
    from exprsim.models.registry import model_spec

    spec = model_spec(cfg.model)
    channels = 1 if cfg.preprocess.grayscale else 3
    # exprnet_s, densenet and fecnet take their channels as a keyword
    takes = cfg.model_kwargs.get("in_channels", spec.in_channels)
    if takes != channels:
        where = " (model_kwargs.in_channels)" if "in_channels" in cfg.model_kwargs else ""
        raise ModelError(
            f"model {cfg.model!r} takes {takes}-channel input{where} but "
            f"preprocess.grayscale={cfg.preprocess.grayscale} gives {channels}"
        )


def check_readout_faces(cfg: TrainConfig, model: Any, n_train: int, n_val: int) -> None:
    """Refuse ``readout_angles`` that could not be scored at the end of the run: the
    choice needs validation faces and 11 training neighbours (kNN11)."""
    if not (cfg.readout_angles and hasattr(model, "readout_angle")):
        return  # a network without a hybrid readout ignores the angles
    if n_val < 1 and cfg.val_fraction == 0:
        raise ArgumentError(
            "readout_angles are chosen on validation faces: they need val_fraction > 0 "
            "(or no readout_angles)"
        )
    if n_val < 1 or n_train < 11:
        more = "val_fraction" if n_val < 1 else "max_train"
        raise ArgumentError(
            f"readout_angles need validation faces and at least 11 training faces (kNN11); "
            f"this config keeps {n_train} training and {n_val} validation faces: raise "
            f"{more}, or drop readout_angles"
        )


def _build(
    cfg: TrainConfig,
    train_data: FerArrays,
    val_data: FerArrays,
    labels: np.ndarray | None,
    device: Any = "cpu",
    init: bool = True,
) -> _Setup:
    import torch

    from exprsim.data.sampler import BalancedClassSampler
    from exprsim.losses.distribution import (
        DistanceMatchingLoss,
        DistributionLoss,
        HellingerMatchingLoss,
    )
    from exprsim.losses.fec_triplet import FECTripletLoss
    from exprsim.losses.sgm import SGMLoss
    from exprsim.models.default import CosineClassifier

    train_labels, val_labels = _split_labels(labels, train_data, val_data)
    model = make_network(cfg, init)
    # channels-last convolutions: ~25% faster CPU training steps (oneDNN), same math
    model = model.to(device=device, memory_format=torch.channels_last)
    sampler = None
    if cfg.sampler == "balanced":
        sampler = BalancedClassSampler(
            train_data.dist.argmax(1) if train_labels is None else train_labels,
            per_class=cfg.per_class,
            batches_per_epoch=max(1, len(train_data.images) // cfg.batch_size),
            seed=cfg.seed,
        )
    head = CosineClassifier(cfg.embedding_dim, train_data.dist.shape[1], scale=cfg.classifier_scale)
    head = head.to(device)
    # a method, not a submodule named ``head`` (FECNet's): exprnet_v's (e, logits)
    own_head = callable(getattr(type(model), "head", None))
    return _Setup(
        model=model,
        head=head,
        own_head=own_head,
        opt=_optimizer(cfg, _param_groups(cfg, model, head, own_head)),
        train_data=train_data,
        val_data=val_data,
        train_labels=train_labels,
        val_labels=val_labels,
        sampler=sampler,
        raw_store=_raw_output_hook(model) if cfg.sgm_embedding == "raw" else None,
        losses={
            "kl": DistributionLoss(cfg.distribution_loss),
            "triplet": FECTripletLoss(margins=cfg.margins),
            "pair": HellingerMatchingLoss(scale=cfg.pair_scale, squared=cfg.pair_squared),
            "prob_pair": HellingerMatchingLoss(scale=math.sqrt(2.0), squared=True),
            "teacher_pair": DistanceMatchingLoss(),
            "sgm": SGMLoss(cfg.sgm_sigma, cfg.sgm_norm_weight),
            "kl_faces": DistributionLoss(cfg.distribution_loss, reduction="none"),
        },
        class_weights=(
            class_balance_weights(train_data.train_target, cfg.class_balance)
            if cfg.class_balance > 0
            else None
        ),
    )


def _step_sgm(s: _Setup, cfg: TrainConfig, idx: np.ndarray, x: Any, d: Any) -> dict[str, Any]:
    import torch

    emb = s.model.head(x)[0] if s.own_head else s.model(x)
    if s.train_labels is not None:
        target = torch.from_numpy(s.train_labels[idx]).to(x.device)
    elif cfg.sgm_target == "majority":
        target = d.argmax(1)
    else:
        target = d
    space = s.raw_store["raw"] if s.raw_store is not None else emb
    terms = s.losses["sgm"].terms(space, target)
    s.opt.zero_grad(set_to_none=True)
    terms.loss.backward()
    s.opt.step()
    return {
        "loss": terms.loss.detach(),
        "sgm_rep": terms.rep.detach(),
        "sgm_norm": terms.norm.detach(),
        "sgm_classes": float(terms.n_classes),
    }


def _step_fec(
    s: _Setup,
    cfg: TrainConfig,
    d_np: np.ndarray,
    x: Any,
    d: Any,
    rng: np.random.Generator,
    tv: Any = None,
) -> dict[str, Any]:
    """One step; ``d_np`` is the batch's vote distributions (as ``d``) for triplet mining,
    ``tv`` the batch's teacher vectors ``(B, T, D)`` for the relational distillation term."""
    import torch

    from exprsim.losses.distribution import ensemble_sq_distances, sqrt_softmax

    if s.own_head:
        emb, logits = s.model.head(x)
    else:
        emb = s.model(x)
        logits = s.head(emb)
    if s.class_weights is None:
        loss_kl = s.losses["kl"](logits, d)
    else:  # per-face weights from the batch's targets (linear in them: mixup-safe)
        w = torch.from_numpy((d_np @ s.class_weights).astype(np.float32)).to(x.device)
        loss_kl = (s.losses["kl_faces"](logits, d) * w).mean()
    loss = cfg.kl_weight * loss_kl
    dev = x.device
    loss_tr = torch.zeros((), device=dev)
    n_trip = 0
    if cfg.triplet_weight > 0:
        trip = batch_triplets(d_np, 3 * cfg.triplets_per_type, cfg.triplet_threshold, rng)
        if trip is not None:
            n_trip = len(trip.i)
            ii, jj, kk, odd, ttype = (
                torch.from_numpy(a).to(dev) for a in (trip.i, trip.j, trip.k, trip.odd, trip.ttype)
            )
            loss_tr = s.losses["triplet"](emb[ii], emb[jj], emb[kk], odd, ttype)
            loss = loss + cfg.triplet_weight * loss_tr
    loss_pair = s.losses["pair"](emb, d) if cfg.pair_weight > 0 else torch.zeros((), device=dev)
    loss = loss + cfg.pair_weight * loss_pair
    loss_pp = torch.zeros((), device=dev)
    if cfg.prob_pair_weight > 0:  # on sqrt(p), the hybrid readout's graded block
        loss_pp = s.losses["prob_pair"](sqrt_softmax(logits), d)
        loss = loss + cfg.prob_pair_weight * loss_pp
    loss_tp = torch.zeros((), device=dev)
    if tv is not None and cfg.teacher_pair_weight > 0:
        a = math.radians(cfg.teacher_pair_angle)
        z = torch.cat([math.cos(a) * sqrt_softmax(logits), math.sin(a) * emb], dim=1)
        loss_tp = s.losses["teacher_pair"](z, ensemble_sq_distances(tv))
        loss = loss + cfg.teacher_pair_weight * loss_tp
    s.opt.zero_grad(set_to_none=True)
    loss.backward()
    s.opt.step()
    return {  # tensors: no device sync per step (summed, read once per epoch)
        "loss": loss.detach(),
        "kl": loss_kl.detach(),
        "triplet": loss_tr.detach(),
        "pair": loss_pair.detach(),
        "prob_pair": loss_pp.detach(),
        "teacher_pair": loss_tp.detach(),
        "n_triplets": float(n_trip),
    }


def _train_epoch(s: _Setup, cfg: TrainConfig, epoch: int, progress: bool) -> dict[str, float]:
    """One epoch; returns the mean of every loss term."""
    import torch

    from exprsim.data.augment import augment_torch

    s.model.train()
    s.head.train()
    # one random stream per epoch (order, augmentation, dropout, triplet mining): a run
    # resumed from a checkpoint ends exactly where an uninterrupted run ends
    torch.manual_seed(cfg.seed * 1000 + epoch)
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
    rng = np.random.default_rng((cfg.seed, epoch, 1))
    n = len(s.train_data.images)
    perm = torch.randperm(n, generator=gen).numpy()
    aug: Any = None
    if cfg.augment and cfg.augment_mode == "flip":
        aug = functools.partial(flip_batch, gen=gen)
    elif cfg.augment:
        aug_rng = np.random.default_rng((cfg.seed, epoch))
        aug = functools.partial(augment_torch, rng=aug_rng, cfg=cfg.augmentation)
    aug = _with_side(aug, train_side(cfg, epoch))
    batches = s.sampler.epoch(epoch) if s.sampler is not None else None
    steps = len(s.sampler) if s.sampler is not None else n // cfg.batch_size
    mix_rng = np.random.default_rng((cfg.seed, epoch, 2))
    dev = _model_device(s.model)
    sums: dict[str, Any] = {}
    bar = progress_bar(
        range(steps), enabled=progress, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step"
    )
    for step in bar:
        for g in s.opt.param_groups:
            g["lr"] = _lr_at(cfg, epoch + step / steps)
        if batches is not None:
            idx = next(batches)
        else:
            idx = perm[step * cfg.batch_size : (step + 1) * cfg.batch_size]
        x = _to_input(s.train_data.images[idx], cfg.preprocess, aug, dev)
        d_np = s.train_data.train_target[idx]
        if cfg.mixup_alpha > 0:
            x, d_np = mix_batch(x, d_np, cfg.mixup_alpha, cfg.mixup_p, mix_rng)
        d = torch.from_numpy(d_np).to(dev)
        if cfg.objective == "sgm":
            terms = _step_sgm(s, cfg, idx, x, d)
        else:
            tv = s.train_data.teacher_vecs
            tv_b = None if tv is None else torch.from_numpy(tv[idx]).to(dev)
            terms = _step_fec(s, cfg, d_np, x, d, rng, tv_b)
        for key, v in terms.items():
            sums[key] = sums.get(key, 0.0) + v
        if progress and step % 20 == 0:
            bar.set_postfix(loss=f"{float(sums['loss']) / (step + 1):.3f}")
    return {key: float(v) / max(steps, 1) for key, v in sums.items()}


def mix_batch(
    x: Any, dist: np.ndarray, alpha: float, share: float, rng: np.random.Generator
) -> tuple[Any, np.ndarray]:
    """Mixup of a batch: inputs ``(B, ...)`` and vote distributions ``(B, C)`` mixed alike.

    A ``share`` of the faces (drawn by ``rng``) become ``l * x_i + (1 - l) * x_j`` with
    ``l ~ Beta(alpha, alpha)`` and ``j`` a random face of the batch; the rest stay as they
    are (``l = 1``). Returns the mixed tensor (same device) and distributions (rows sum to 1).
    """
    import torch

    b = len(dist)
    lam = rng.beta(alpha, alpha, size=b)
    lam = np.where(rng.random(b) < share, lam, 1.0).astype(np.float32)
    j = rng.permutation(b)
    d_mix = (lam[:, None] * dist + (1.0 - lam[:, None]) * dist[j]).astype(np.float32)
    lt = torch.from_numpy(lam).to(x.device).view(-1, *([1] * (x.ndim - 1)))
    jt = torch.from_numpy(j).to(x.device)
    return lt * x + (1.0 - lt) * x[jt], d_mix


def _finish(s: _Setup, cfg: TrainConfig, run: RunFolder, swa: Any, swa_n: int) -> dict[str, float]:
    """Weight average (if any), readout choice and export; returns their metrics."""
    metrics: dict[str, float] = {}
    if swa is not None:
        s.model.load_state_dict(swa)
        _recompute_bn(s.model, s.train_data, cfg)
        swa_metrics = {"snapshots": float(swa_n)}
        if len(s.val_data.images):
            swa_metrics.update(_validate(s.model, s.head, s.val_data, cfg, s.val_labels))
        log.info("weight average of %d snapshots: %s", swa_n, json.dumps(swa_metrics))
        run.write_json("swa.json", swa_metrics)
        metrics.update({f"swa_{k}": v for k, v in swa_metrics.items()})
    if cfg.readout_angles and hasattr(s.model, "readout_angle"):
        rows = choose_readout(s.model, s.train_data, s.val_data, cfg)
        text = "".join(json.dumps(r) + "\n" for r in rows).encode()
        write_atomically(run.dir / "readout.jsonl", lambda f: f.write(text))
        metrics["readout_angle"] = float(s.model.readout_angle)
    export(s.model, cfg, run.dir)
    return metrics


#: fields a resumed run may set differently: more epochs, a longer weight-average window
#: (checked against the snapshots already averaged), where and with how many threads it
#: trains, the exported model's version
MAY_CHANGE = ("epochs", "num_threads", "swa_epochs", "version", "device")


def check_resume(cfg: TrainConfig, run: RunFolder) -> dict[str, Any] | None:
    """The checkpoint a run of ``cfg`` in ``run`` resumes from (``None``: a fresh run),
    writing nothing: refuses another run's folder, a shorter run, and a weight-average
    window that does not fit the snapshots the checkpoint holds."""
    run.check(cfg, MAY_CHANGE)
    state = run.resume_state(cfg.epochs, "epoch")
    if state is not None:
        _check_swa_resume(cfg, int(state.get("epoch", 0)), int(state.get("swa_n", 0)))
    return state


@exclusive_run
def train(
    cfg: TrainConfig,
    out_dir: str | Path,
    progress: bool = True,
    labels: np.ndarray | None = None,
) -> TrainResult:
    """Train (or resume) a model; returns where everything was written and the final metrics.

    Nothing is written before the config, the data, the network and ``init_from`` have
    been checked; the run holds a lock on ``out_dir`` (:func:`~exprsim.training.run.run_lock`).

    Args:
        cfg: the run's config.
        out_dir: output folder (resumed when it holds a run of the same config).
        progress: show progress bars.
        labels: optional ``(N,)`` int class of every face as loaded (FER+ Training
            without PublicTest duplicates, first ``max_train``; or the synthetic set), before
            the validation hold-out (faces the run leaves out, by ``min_votes`` or
            ``val_drop_twins``, may hold -1). It replaces the majority vote for the SGM loss
            (one-hot) and the balanced sampler, e.g. sub-class labels of
            :mod:`exprsim.training.sgm`.
    """
    _check_choices(cfg)
    check_network(cfg)  # an unknown network fails here, before any data or folder
    run = RunFolder(out_dir)
    state = check_resume(cfg, run)  # read once, before claim() rewrites
    device = resolve_device(cfg.device)
    setup_torch(cfg.seed, cfg.num_threads)
    if device.type == "cuda":
        import torch

        torch.backends.cudnn.benchmark = True
    train_data, val_data = load_data(cfg)  # bad data settings fail before anything is written
    check_batch_size(cfg, len(train_data.images))
    # so do the network and init_from (not read when resuming: the checkpoint's weights win)
    s = _build(cfg, train_data, val_data, labels, device, init=state is None)
    check_readout_faces(cfg, s.model, len(train_data.images), len(val_data.images))
    s.data_digest = data_digest(train_data, val_data, labels)
    if state is not None:  # another network's checkpoint, or other data: refused before the claim
        check_weights(run.state_path, state.get("model"), s.model)
        check_weights(run.state_path, state.get("head"), s.head)
        check_same_data(run, state, s.data_digest)
    run.claim(cfg, MAY_CHANGE)
    start_epoch, swa, swa_n = _resume(s, cfg, run, device, state)
    del state
    metrics: dict[str, float] = {}
    for epoch in range(start_epoch, cfg.epochs):
        t_ep = time.perf_counter()
        metrics = _train_epoch(s, cfg, epoch, progress)
        metrics.update(
            epoch=epoch + 1, seconds=time.perf_counter() - t_ep, lr=_lr_at(cfg, epoch + 1)
        )
        if len(val_data.images):
            metrics.update(_validate(s.model, s.head, val_data, cfg, s.val_labels))
        log.info(
            "epoch %d: %s", epoch + 1, json.dumps({k: round(v, 4) for k, v in metrics.items()})
        )
        run.append_metrics(metrics)
        if cfg.swa_epochs and epoch >= cfg.epochs - cfg.swa_epochs:
            swa, swa_n = _swa_update(swa, swa_n, s.model)
        _save_checkpoint(s, run, epoch + 1, swa, swa_n)
    # a kill from here to the export leaves a mark that says so; a finished run run again
    # (nothing trained now) that fails before it changed the model keeps it usable
    with writing_model(run.dir, again=start_epoch == cfg.epochs):
        metrics.update(_finish(s, cfg, run, swa, swa_n))
    return TrainResult(run.dir, cfg.epochs - start_epoch, run.seconds(), metrics)


def _resume(
    s: _Setup, cfg: TrainConfig, run: RunFolder, device: Any, state: dict[str, Any] | None
) -> tuple[int, Any, int]:
    """Load the run's last checkpoint ``state`` (:meth:`RunFolder.load_state`) into ``s``;
    ``(epochs done, weight average, snapshots)`` (``(0, None, 0)`` for a fresh run)."""
    if state is None:
        run.trim_metrics("epoch", 0)  # rows of a first epoch killed before its checkpoint
        return 0, None, 0
    with foreign_checkpoint(run.state_path):
        if "model" in state:
            s.model.load_state_dict(state["model"])
        else:  # checkpoints written before weights moved into state.pt
            from safetensors.torch import load_file

            s.model.load_state_dict(load_file(str(run.dir / "last.safetensors")))
        s.head.load_state_dict(state["head"])
        s.opt.load_state_dict(state["opt"])
        start_epoch = int(state["epoch"])
    swa, swa_n = _on(state.get("swa"), device), int(state.get("swa_n", 0))
    log.info("resuming %s from epoch %d", run.dir, start_epoch)
    run.trim_metrics("epoch", start_epoch)
    return start_epoch, swa, swa_n


def _save_checkpoint(s: _Setup, run: RunFolder, epochs_done: int, swa: Any, swa_n: int) -> None:
    """One atomic file holds weights, optimiser, epoch and the weight average together, all
    on the CPU (a run resumes on any machine); the weights also as ``last.safetensors``."""
    weights = {k: v.detach().contiguous().cpu() for k, v in s.model.state_dict().items()}
    run.save_state(
        {
            "model": weights,
            "head": _on(s.head.state_dict(), "cpu"),
            "opt": _on(s.opt.state_dict(), "cpu"),
            "epoch": epochs_done,
            "swa": _on(swa, "cpu"),
            "swa_n": swa_n,
            "data_digest": s.data_digest,
        }
    )
    run.save_weights(weights)  # the same weights, for load_model and init_from


def _export_kwargs(model: Any, cfg: TrainConfig) -> dict[str, Any]:
    kwargs = dict(cfg.model_kwargs)
    if getattr(cfg, "readout_angles", ()) and hasattr(model, "readout_angle"):
        kwargs["readout_angle"] = float(model.readout_angle)
    return kwargs


def export(model: Any, cfg: TrainConfig, out: Path) -> Path:
    """Write ``model.safetensors`` + ``config.json`` loadable by :func:`exprsim.load_model`."""
    ecfg = EmbedderConfig(
        model=cfg.model,
        embedding_dim=cfg.embedding_dim,
        preprocess=cfg.preprocess,
        version=cfg.version,
        model_kwargs=_export_kwargs(model, cfg),
    )
    return export_embedder(model, ecfg, out)
