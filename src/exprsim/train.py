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

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from exprsim.config import load_json, save_json
from exprsim.models.embedder import EmbedderConfig, PreprocessConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (saved as ``train_config.json``).

    Attributes:
        model: registry name; ``model_kwargs`` go to its builder.
        data: ``"ferplus"`` (../shared/data/fer2013) or ``"synthetic"`` (tests).
        val_fraction: share of Training held out (by ``seed``) for monitoring and choices;
            PublicTest is never used for any choice.
        epochs, batch_size, lr, weight_decay, momentum: ``optimizer`` ``"sgd"`` (Nesterov,
            ``momentum``) or ``"adamw"`` (decoupled ``weight_decay``), with a cosine
            schedule after ``warmup_epochs`` linear warm-up.
        kl_weight, triplet_weight, pair_weight: loss mix.
        triplet_threshold: minimum Hellinger gap between the closest and the second-closest
            pair for an in-batch vote triplet to count as clear.
        triplets_per_type: triplets of each type per batch (FECNet: 30).
        margins: two-hinge margins for one-, two-, three-class triplets.
        augment: augment training crops; ``augment_mode`` ``"full"`` = flip, small affine,
            brightness/contrast, blur; ``"flip"`` = horizontal flip only (short CPU runs
            underfit with full augmentation).
        max_train: use only the first N training faces (tiny runs).
        objective: ``"fec"`` (the kl / triplet / pair mix above) or ``"sgm"`` (SGM loss only;
            the kl / triplet / pair weights are then unused).
        sgm_sigma, sgm_norm_weight: SGM Gaussian width (paper 0.5) and weight of its
            mean-norm term (paper 1).
        sgm_target: SGM true posterior: ``"votes"`` (FER+ vote distribution) or
            ``"majority"`` (one-hot majority label); class labels given to :func:`train`
            always act one-hot.
        sgm_embedding: space the SGM loss sees: ``"normalized"`` (the L2-normalised output the
            library ships; the norm term is then the constant 1) or ``"raw"`` (the
            pre-normalisation output, as the paper's unnormalised embedding; needs a model
            with a ``bn`` layer feeding the normalisation, as ``exprnet_s``).
        sampler: ``"random"`` (shuffled epochs of ``batch_size``) or ``"balanced"``
            (``per_class`` faces of every class per batch; ``len(train) // batch_size``
            batches per epoch, with ``batch_size`` = ``per_class`` x classes).
        lr_schedule: ``"cosine"`` (after warm-up) or ``"constant"`` (``lr`` throughout).
        optimizer ``"adam"``: plain Adam (``weight_decay`` as L2 in the gradient).
        init_from: folder with ``model.safetensors`` (or ``last.safetensors``) to start from.
    """

    model: str = "exprnet_s"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    embedding_dim: int = 16
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    data: str = "ferplus"
    data_dir: str | None = None
    val_fraction: float = 0.05
    epochs: int = 20
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    kl_weight: float = 1.0
    triplet_weight: float = 1.0
    pair_weight: float = 1.0
    triplet_threshold: float = 0.2
    triplets_per_type: int = 30
    margins: tuple[float, float, float] = (0.1, 0.2, 0.2)
    classifier_scale: float = 16.0
    augment: bool = True
    augment_mode: str = "full"
    max_train: int | None = None
    seed: int = 0
    num_threads: int = 0
    version: str = "1"
    objective: str = "fec"
    sgm_sigma: float = 0.5
    sgm_norm_weight: float = 1.0
    sgm_target: str = "votes"
    sgm_embedding: str = "normalized"
    sampler: str = "random"
    per_class: int = 30
    lr_schedule: str = "cosine"
    init_from: str | None = None


@dataclass(frozen=True)
class TrainResult:
    out_dir: Path
    epochs_run: int
    seconds: float
    final_metrics: dict[str, float]


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class _Arrays:
    images: np.ndarray  # (N, 48, 48) uint8
    dist: np.ndarray  # (N, 8) float32


def synthetic_votes(n: int, seed: int = 0, size: int = 48) -> _Arrays:
    """Tiny learnable stand-in for FER+: class-dependent patterns, noisy vote distributions."""
    rng = np.random.default_rng(seed)
    n_classes = 8
    protos = rng.uniform(0, 255, size=(n_classes, size, size)).astype(np.float32)
    mix = rng.dirichlet(np.full(n_classes, 0.3), size=n).astype(np.float32)
    imgs = np.einsum("nc,chw->nhw", mix, protos) + rng.normal(0, 10, size=(n, size, size))
    return _Arrays(np.clip(imgs, 0, 255).astype(np.uint8), mix)


def holdout_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train_idx, val_idx)``: a seeded ``fraction`` of ``range(n)`` held out, both sorted.

    With the default training config (``val_fraction=0.05``, ``seed=0``) on FER+ Training
    (PublicTest duplicates dropped) this gives the faces the default model never trained on;
    :mod:`exprsim.apps` chooses K and calibrates thresholds on them.
    """
    perm = np.random.default_rng(seed).permutation(n)
    n_val = round(fraction * n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _load_data(cfg: TrainConfig) -> tuple[_Arrays, _Arrays]:
    if cfg.data == "synthetic":
        full = synthetic_votes(cfg.max_train or 512, seed=cfg.seed)
    elif cfg.data == "ferplus":
        from exprsim.data.fer import load_ferplus

        split = load_ferplus("Training", cfg.data_dir, drop_duplicates_of="PublicTest")
        full = _Arrays(split.images, split.dist)
        if cfg.max_train:
            full = _Arrays(full.images[: cfg.max_train], full.dist[: cfg.max_train])
    else:
        raise ValueError(f"unknown data {cfg.data!r}; expected 'ferplus' or 'synthetic'")
    tr_idx, val_idx = holdout_split(len(full.images), cfg.val_fraction, cfg.seed)
    return (
        _Arrays(full.images[tr_idx], full.dist[tr_idx]),
        _Arrays(full.images[val_idx], full.dist[val_idx]),
    )


# --------------------------------------------------------------------------- augmentation


def flip_batch(x: Any, gen: Any) -> Any:
    """Mirror a random half of ``(B, C, H, W)`` crops left-right."""
    import torch

    flip = torch.rand(x.shape[0], generator=gen, device=x.device) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)


def augment_batch(x: Any, gen: Any) -> Any:
    """Batched torch augmentation of ``(B, 1, S, S)`` normalised crops.

    Horizontal flip (p=0.5), random affine (rotation +-10 deg, scale 0.9-1.1, shift +-8% of
    the side), brightness +-0.2 / contrast x0.8-1.2 (in normalised units), and a 3x3
    Gaussian blur on 20% of the batch.
    """
    import torch
    import torch.nn.functional as F

    b = x.shape[0]
    dev = x.device

    def u(lo: float, hi: float) -> Any:
        return torch.rand(b, generator=gen, device=dev) * (hi - lo) + lo

    ang = u(-10, 10) * math.pi / 180
    sc = u(0.9, 1.1)
    flip = torch.where(torch.rand(b, generator=gen, device=dev) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(ang) / sc, torch.sin(ang) / sc
    theta = torch.stack(
        [
            torch.stack([cos * flip, -sin, u(-0.16, 0.16)], dim=1),
            torch.stack([sin * flip, cos, u(-0.16, 0.16)], dim=1),
        ],
        dim=1,
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    x = x * u(0.8, 1.2).view(b, 1, 1, 1) + u(-0.2, 0.2).view(b, 1, 1, 1)
    blur = torch.rand(b, generator=gen, device=dev) < 0.2
    if bool(blur.any()):
        k = torch.tensor([1.0, 2.0, 1.0], device=dev)
        k2 = (k[:, None] * k[None, :] / 16.0).view(1, 1, 3, 3)
        xb = F.conv2d(F.pad(x[blur], (1, 1, 1, 1), mode="replicate"), k2)
        x = x.clone()
        x[blur] = xb
    return x


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


# --------------------------------------------------------------------------- loop


def _to_input(images: np.ndarray, pre: PreprocessConfig) -> Any:
    import torch

    x = torch.from_numpy(images).float().unsqueeze(1)
    return ((x / 255.0 - pre.mean) / pre.std).contiguous(memory_format=torch.channels_last)


def _lr_at(cfg: TrainConfig, epoch_pos: float) -> float:
    if cfg.lr_schedule == "constant":
        return cfg.lr
    if epoch_pos < cfg.warmup_epochs:
        return cfg.lr * max(epoch_pos / cfg.warmup_epochs, 0.01)
    span = max(cfg.epochs - cfg.warmup_epochs, 1e-9)
    p = min((epoch_pos - cfg.warmup_epochs) / span, 1.0)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * p))


def embed_array(
    model: Any, images: np.ndarray, pre: PreprocessConfig, batch: int = 512
) -> np.ndarray:
    """Embed ``(N, 48, 48)`` uint8 training-format crops with ``model`` in eval mode."""
    import torch

    model.eval()
    out = []
    with torch.inference_mode():
        for s in range(0, len(images), batch):
            out.append(model(_to_input(images[s : s + batch], pre)).numpy())
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 16), np.float32)


def _validate(
    model: Any, head: Any, val: _Arrays, cfg: TrainConfig, labels: np.ndarray | None = None
) -> dict[str, float]:
    import torch

    from exprsim.metrics import knn_search, triplet_accuracy

    emb = embed_array(model, val.images, cfg.preprocess)
    major = val.dist.argmax(1)
    out: dict[str, float] = {}
    if cfg.objective == "fec" and cfg.kl_weight > 0:
        with torch.inference_mode():
            logits = head(torch.from_numpy(emb))
        out["val_cls_acc"] = float((logits.argmax(1).numpy() == major).mean())
    else:  # no trained classifier head: leave-one-out 11-NN among the validation faces
        lab = major if labels is None else labels
        k = min(11, len(emb) - 1)
        if k >= 1:
            idx, _ = knn_search(emb, emb, k, exclude_self=True)
            votes = np.apply_along_axis(np.bincount, 1, lab[idx], minlength=int(lab.max()) + 1)
            out["val_knn11_acc"] = float((votes.argmax(1) == lab).mean())
    trip = batch_triplets(
        val.dist, min(3000, len(val.dist)), cfg.triplet_threshold, np.random.default_rng(0)
    )
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
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; expected 'sgd', 'adamw' or 'adam'")


def _check_choices(cfg: TrainConfig) -> None:
    choices = {
        "objective": ("fec", "sgm"),
        "sgm_target": ("votes", "majority"),
        "sgm_embedding": ("normalized", "raw"),
        "sampler": ("random", "balanced"),
        "lr_schedule": ("cosine", "constant"),
    }
    for name, allowed in choices.items():
        if getattr(cfg, name) not in allowed:
            raise ValueError(f"{name} must be one of {allowed}, got {getattr(cfg, name)!r}")


def _raw_output_hook(model: Any) -> dict[str, Any]:
    """Capture the pre-normalisation embedding (output of ``model.bn``) on every forward."""
    layer = getattr(model, "bn", None)
    if layer is None:
        raise ValueError(
            "sgm_embedding='raw' needs a model whose `bn` layer feeds the L2 normalisation "
            "(as exprnet_s)"
        )
    store: dict[str, Any] = {}

    def hook(_mod: Any, _inp: Any, output: Any) -> None:
        store["raw"] = output

    layer.register_forward_hook(hook)
    return store


def train(
    cfg: TrainConfig,
    out_dir: str | Path,
    progress: bool = True,
    labels: np.ndarray | None = None,
) -> TrainResult:
    """Train (or resume) a model; returns where everything was written and the final metrics.

    Args:
        cfg: the run's config.
        out_dir: output folder (resumed when it holds a run of the same config).
        progress: show progress bars.
        labels: optional ``(N,)`` int class of every training face as loaded (FER+ Training
            without PublicTest duplicates, first ``max_train``; or the synthetic set), before
            the validation hold-out. It replaces the majority vote for the SGM loss (one-hot)
            and the balanced sampler, e.g. sub-class labels of
            :mod:`exprsim.apps.subclasses`.
    """
    import torch
    from safetensors.torch import load_file, save_file
    from tqdm import tqdm

    from exprsim.data.sampler import BalancedClassSampler
    from exprsim.losses.distribution import DistributionLoss, HellingerMatchingLoss
    from exprsim.losses.fec_triplet import FECTripletLoss
    from exprsim.losses.sgm import SGMLoss
    from exprsim.models.default import CosineClassifier
    from exprsim.models.registry import create_model

    _check_choices(cfg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    cfg_path = out / "train_config.json"
    if cfg_path.exists():
        old = load_json(TrainConfig, cfg_path)
        same: dict[str, Any] = {"epochs": cfg.epochs, "num_threads": cfg.num_threads}
        if replace(old, **same) != replace(cfg, **same):
            raise ValueError(f"{out} holds a run with a different config; use a new --out")
    save_json(cfg, cfg_path)

    train_data, val_data = _load_data(cfg)
    train_labels, val_labels = None, None
    if labels is not None:
        labels = np.asarray(labels, np.int64)
        n_all = len(train_data.images) + len(val_data.images)
        if labels.shape != (n_all,):
            raise ValueError(f"labels must have shape ({n_all},), got {labels.shape}")
        tr_idx, val_idx = holdout_split(n_all, cfg.val_fraction, cfg.seed)
        train_labels, val_labels = labels[tr_idx], labels[val_idx]
    n_classes = train_data.dist.shape[1]
    model = create_model(cfg.model, embedding_dim=cfg.embedding_dim, **cfg.model_kwargs)
    # channels-last convolutions: ~25% faster CPU training steps (oneDNN), same math
    model = model.to(memory_format=torch.channels_last)
    if cfg.init_from:
        init = Path(cfg.init_from)
        w = init / "model.safetensors"
        model.load_state_dict(load_file(str(w if w.is_file() else init / "last.safetensors")))
        log.info("initialised from %s", init)
    sgm_loss = SGMLoss(cfg.sgm_sigma, cfg.sgm_norm_weight)
    raw_store = _raw_output_hook(model) if cfg.sgm_embedding == "raw" else None
    sampler = None
    if cfg.sampler == "balanced":
        sampler = BalancedClassSampler(
            train_data.dist.argmax(1) if train_labels is None else train_labels,
            per_class=cfg.per_class,
            batches_per_epoch=max(1, len(train_data.images) // cfg.batch_size),
            seed=cfg.seed,
        )
    head = CosineClassifier(cfg.embedding_dim, n_classes, scale=cfg.classifier_scale)
    params = list(model.parameters()) + list(head.parameters())
    opt = _optimizer(cfg, params)
    kl_loss = DistributionLoss("kl")
    trip_loss = FECTripletLoss(margins=cfg.margins)
    pair_loss = HellingerMatchingLoss(scale=math.sqrt(2.0))
    start_epoch = 0
    state_path = out / "state.pt"
    if state_path.exists():
        state = torch.load(state_path, weights_only=True)
        model.load_state_dict(load_file(str(out / "last.safetensors")))
        head.load_state_dict(state["head"])
        opt.load_state_dict(state["opt"])
        start_epoch = int(state["epoch"])
        log.info("resuming %s from epoch %d", out, start_epoch)
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + start_epoch)
    rng = np.random.default_rng(cfg.seed * 1000 + start_epoch)
    n = len(train_data.images)
    steps = len(sampler) if sampler is not None else n // cfg.batch_size
    t0 = time.perf_counter()
    metrics: dict[str, float] = {}
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        head.train()
        perm = torch.randperm(n, generator=gen).numpy()
        batches = sampler.epoch(epoch) if sampler is not None else None
        if cfg.objective == "sgm":
            sums = {"loss": 0.0, "sgm_rep": 0.0, "sgm_norm": 0.0, "sgm_classes": 0.0}
        else:
            sums = {"loss": 0.0, "kl": 0.0, "triplet": 0.0, "pair": 0.0, "n_triplets": 0.0}
        bar = tqdm(
            range(steps), desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not progress, unit="step"
        )
        t_ep = time.perf_counter()
        for step in bar:
            for g in opt.param_groups:
                g["lr"] = _lr_at(cfg, epoch + step / steps)
            if batches is not None:
                idx = next(batches)
            else:
                idx = perm[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            x = _to_input(train_data.images[idx], cfg.preprocess)
            if cfg.augment:
                x = (flip_batch if cfg.augment_mode == "flip" else augment_batch)(x, gen)
                x = x.contiguous(memory_format=torch.channels_last)
            d = torch.from_numpy(train_data.dist[idx])
            emb = model(x)
            if cfg.objective == "sgm":
                if train_labels is not None:
                    target = torch.from_numpy(train_labels[idx])
                elif cfg.sgm_target == "majority":
                    target = d.argmax(1)
                else:
                    target = d
                space = raw_store["raw"] if raw_store is not None else emb
                terms = sgm_loss.terms(space, target)
                opt.zero_grad(set_to_none=True)
                terms.loss.backward()
                opt.step()
                sums["loss"] += float(terms.loss.detach())
                sums["sgm_rep"] += float(terms.rep.detach())
                sums["sgm_norm"] += float(terms.norm.detach())
                sums["sgm_classes"] += terms.n_classes
                if step % 20 == 0:
                    bar.set_postfix(loss=f"{sums['loss'] / (step + 1):.3f}")
                continue
            loss_kl = kl_loss(head(emb), d)
            loss = cfg.kl_weight * loss_kl
            loss_tr = torch.zeros(())
            n_trip = 0
            if cfg.triplet_weight > 0:
                trip = batch_triplets(
                    train_data.dist[idx], 3 * cfg.triplets_per_type, cfg.triplet_threshold, rng
                )
                if trip is not None:
                    n_trip = len(trip.i)
                    ii, jj, kk = (torch.from_numpy(a) for a in (trip.i, trip.j, trip.k))
                    loss_tr = trip_loss(
                        emb[ii],
                        emb[jj],
                        emb[kk],
                        torch.from_numpy(trip.odd),
                        torch.from_numpy(trip.ttype),
                    )
                    loss = loss + cfg.triplet_weight * loss_tr
            loss_pair = pair_loss(emb, d) if cfg.pair_weight > 0 else torch.zeros(())
            loss = loss + cfg.pair_weight * loss_pair
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sums["loss"] += float(loss.detach())
            sums["kl"] += float(loss_kl.detach())
            sums["triplet"] += float(loss_tr.detach())
            sums["pair"] += float(loss_pair.detach())
            sums["n_triplets"] += n_trip
            if step % 20 == 0:
                bar.set_postfix(loss=f"{sums['loss'] / (step + 1):.3f}")
        metrics = {key: v / max(steps, 1) for key, v in sums.items()}
        metrics.update(
            epoch=epoch + 1, seconds=time.perf_counter() - t_ep, lr=_lr_at(cfg, epoch + 1)
        )
        if len(val_data.images):
            metrics.update(_validate(model, head, val_data, cfg, val_labels))
        log.info(
            "epoch %d: %s", epoch + 1, json.dumps({k: round(v, 4) for k, v in metrics.items()})
        )
        with (out / "metrics.jsonl").open("a") as f:
            f.write(json.dumps(metrics) + "\n")
        # checkpoint atomically: weights first, then the state that points at them
        tmp = out / "last.safetensors.tmp"
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
        os.replace(tmp, out / "last.safetensors")
        torch.save(
            {"head": head.state_dict(), "opt": opt.state_dict(), "epoch": epoch + 1},
            out / "state.pt.tmp",
        )
        os.replace(out / "state.pt.tmp", state_path)
    export(model, cfg, out)
    return TrainResult(out, cfg.epochs - start_epoch, time.perf_counter() - t0, metrics)


def export(model: Any, cfg: TrainConfig, out: Path) -> Path:
    """Write ``model.safetensors`` + ``config.json`` loadable by :func:`exprsim.load_model`."""
    from safetensors.torch import save_file

    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "model.safetensors")
    )
    ecfg = EmbedderConfig(
        model=cfg.model,
        embedding_dim=cfg.embedding_dim,
        preprocess=cfg.preprocess,
        version=cfg.version,
        model_kwargs=dict(cfg.model_kwargs),
    )
    (out / "config.json").write_text(ecfg.to_json() + "\n")
    return out
