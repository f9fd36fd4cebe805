"""Train an expression embedding on FEC triplets with the FECNet (or FEENet) recipe.

FECNet (Vemulapalli & Agarwala, CVPR 2019, Sec. 4.1 and 5.2): strong-agreement training
triplets only; mini-batches of 90 triplets (30 one-class, 30 two-class, 30 three-class);
Adam, learning rate 5e-4; 50K iterations; the two-hinge triplet loss on L2 distances of
L2-normalised 16-d embeddings with margin 0.1 for one-class and 0.2 for two- and three-class
triplets (:class:`exprsim.losses.fec_triplet.FECTripletLoss`). FEENet: the same loss on
*squared* L2 distances with margin 0.2 for every type (``FECTripletLoss.feenet()``;
``configs/fec-feenet.json``). The paper validates on the FEC test set's triplet accuracy
(``val_csv``).

Written to ``out_dir``: ``train_config.json`` (this config), ``last.safetensors`` +
``state.pt`` (checkpoint: optimizer state and iteration; loadable with
``weights_only=True``), ``metrics.jsonl`` (training loss every ``log_every`` iterations and
validation accuracy every ``val_every``), and at the end ``model.safetensors`` +
``config.json`` via :func:`exprsim.training.run.export_embedder` (loadable by :func:`exprsim.load_model`).
Re-running with the same folder resumes from the last checkpoint; batches are a function of
``(seed, iteration)``, so a resumed run sees the batches an uninterrupted one would have.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from exprsim.config import check_ranges, config_hash, seed_range
from exprsim.errors import ArgumentError, DataError, ModelError
from exprsim.models.embedder import EmbedderConfig, PreprocessConfig
from exprsim.progress import progress_bar
from exprsim.training.run import (
    MAX_EMBEDDING_DIM,
    MAX_TRIPLETS_PER_TYPE,
    RunFolder,
    array_digest,
    build_network,
    check_same_data,
    check_weights,
    exclusive_run,
    export_embedder,
    foreign_checkpoint,
    setup_torch,
)

log = logging.getLogger(__name__)

#: fields a resumed run may set differently (as the FER+ recipe allows): its length, where
#: and with how many threads it trains, the exported model's version
MAY_CHANGE = ("iterations", "device", "num_threads", "version")


def _rgb112() -> PreprocessConfig:
    return PreprocessConfig(input_size=112, grayscale=False, mean=0.5, std=0.25, align_size=112)


@dataclass(frozen=True)
class FECTrainConfig:
    """A FEC training run (saved as ``train_config.json``; ``configs/fec-*.json``).

    Attributes:
        kind: always ``"fec"`` (``exprsim train --config`` dispatches on it).
        model: registry name (``fecnet``, ``feenet``, ...); ``model_kwargs`` go to its builder.
        embedding_dim: output dimension (16).
        preprocess: crop -> network input (must match the model's channels); the crops in
            ``crops_dir`` are resized to ``preprocess.input_size``.
        train_csv: FEC training CSV.
        crops_dir: crops folder (``exprsim fec crop``), or the fetch folder holding ``crops/``.
        val_csv: FEC test CSV for triplet accuracy during training (the paper's validation
            measure), or ``None``.
        agreement: minimum rater agreement of the triplets used (paper: ``"strong"``).
        iterations: optimizer steps (paper: 50,000).
        triplets_per_type: per batch (paper: 30, i.e. batches of 90).
        lr: Adam learning rate (paper: 5e-4).
        weight_decay: Adam weight decay (paper: none stated; 0).
        margins: one-, two-, three-class margins (FECNet 0.1/0.2/0.2; FEENet 0.2/0.2/0.2).
        squared: squared L2 distances in the loss (FEENet).
        hflip: randomly mirror each crop (not in the papers; off by default).
        val_every, checkpoint_every, log_every: in iterations.
        seed: batches, initialisation and flips.
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        num_threads: torch CPU threads (0: torch's default).
        version: stored with the exported model.
        notes: free text (which paper the recipe follows).
    """

    __hash__ = config_hash  # equal configs hash alike (dict fields)

    kind: str = "fec"
    model: str = "fecnet"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    embedding_dim: int = 16
    preprocess: PreprocessConfig = field(default_factory=_rgb112)
    train_csv: str | None = None
    crops_dir: str | None = None
    val_csv: str | None = None
    agreement: str = "strong"
    iterations: int = 50_000
    triplets_per_type: int = 30
    lr: float = 5e-4
    weight_decay: float = 0.0
    margins: tuple[float, float, float] = (0.1, 0.2, 0.2)
    squared: bool = False
    hflip: bool = False
    val_every: int = 5000
    checkpoint_every: int = 1000
    log_every: int = 100
    seed: int = 0
    device: str = "auto"
    num_threads: int = 0
    version: str = "1"
    notes: str = ""

    def __post_init__(self) -> None:
        if self.kind != "fec":
            raise ArgumentError(f"FECTrainConfig.kind must be 'fec', got {self.kind!r}")
        if self.iterations < 0 or self.triplets_per_type < 1:
            raise ArgumentError("iterations must be >= 0 and triplets_per_type >= 1")
        if len(self.margins) != 3 or not all(
            isinstance(m, int | float) and not isinstance(m, bool) and 0 <= m < math.inf
            for m in self.margins
        ):  # NaN margins trained NaN weights
            raise ArgumentError(
                "margins needs 3 finite numbers >= 0 (one, two, three), got "
                f"{tuple(self.margins)!r}"
            )
        from exprsim.data.fec import Agreement

        Agreement.parse(self.agreement)  # an unknown agreement failed at the data
        ranges = {
            "val_every": (self.val_every >= 1, ">= 1"),
            "checkpoint_every": (self.checkpoint_every >= 1, ">= 1"),
            "log_every": (self.log_every >= 1, ">= 1"),
            "lr": (self.lr > 0, "> 0"),
            "weight_decay": (self.weight_decay >= 0, ">= 0"),
            "seed": seed_range(self.seed),
            "num_threads": (self.num_threads >= 0, ">= 0"),
            # checked before the data is read (was: a torch error once it had been)
            "embedding_dim": (
                2 <= self.embedding_dim <= MAX_EMBEDDING_DIM,
                f"in [2, {MAX_EMBEDDING_DIM}]",
            ),
            "triplets_per_type": (
                self.triplets_per_type <= MAX_TRIPLETS_PER_TYPE,
                f"at most {MAX_TRIPLETS_PER_TYPE}",
            ),
        }
        check_ranges(self, ranges)


@dataclass(frozen=True)
class FECTrainResult:
    """Where a run was written and how it ended.

    Attributes:
        out_dir: the run folder.
        iterations_run: optimizer steps taken by this call (0 when already finished).
        seconds: wall time of this call.
        final_metrics: last logged training metrics and, with ``val_csv``, validation
            accuracy (``val_all``, ``val_one``, ...).
    """

    out_dir: Path
    iterations_run: int
    seconds: float
    final_metrics: dict[str, float]

    @property
    def epochs_run(self) -> int:
        """Alias of :attr:`iterations_run` (FEC trains by iteration, not by epoch)."""
        return self.iterations_run

    def to_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "iterations_run": self.iterations_run,
            "seconds": self.seconds,
            "final_metrics": self.final_metrics,
        }


def _check_compat(cfg: FECTrainConfig) -> None:
    from exprsim.models.registry import model_spec

    spec = model_spec(cfg.model)
    channels = 1 if cfg.preprocess.grayscale else 3
    if spec.in_channels != channels:
        raise ModelError(
            f"model {cfg.model!r} takes {spec.in_channels}-channel input but preprocess.grayscale="
            f"{cfg.preprocess.grayscale} gives {channels}"
        )


def _embedder_config(cfg: FECTrainConfig) -> EmbedderConfig:
    return EmbedderConfig(
        model=cfg.model,
        embedding_dim=cfg.embedding_dim,
        preprocess=cfg.preprocess,
        version=cfg.version,
        model_kwargs=dict(cfg.model_kwargs),
    )


def validate(
    model: Any, cfg: FECTrainConfig, dataset: Any, batch_size: int = 256
) -> dict[str, float]:
    """Triplet accuracy of ``model`` on a :class:`~exprsim.fec.dataset.FecTripletDataset`.

    Embeds through :class:`exprsim.models.embedder.Embedder` (the inference path) and leaves
    the model in eval mode on its device.
    """
    from exprsim.fec.evaluate import embed_dataset
    from exprsim.metrics import triplet_accuracy
    from exprsim.models.embedder import Embedder

    device = next(model.parameters()).device
    emb_model = Embedder(model, _embedder_config(cfg), batch_size=batch_size, device=str(device))
    emb, pos = embed_dataset(emb_model, dataset)
    acc = triplet_accuracy(emb, pos[:, 0], pos[:, 1], pos[:, 2], dataset.odd, dataset.ttype)
    return {f"val_{k}": float(v) for k, v in acc.items()}


def _data_digest(train_set: Any, val_set: Any) -> str:
    """:func:`~exprsim.training.run.array_digest` of the triplets a run trains and
    validates on (their crop rows, odd faces and types): cropping more of the CSV's images
    changes which triplets are usable, and a resumed run would then see other batches."""
    parts = [train_set.rows, train_set.odd, train_set.ttype]
    if val_set is not None:
        parts += [val_set.rows, val_set.odd, val_set.ttype]
    return array_digest(*parts)


def _fec_data(cfg: FECTrainConfig) -> tuple[Any, Any, Any]:
    """``(train set, balanced sampler, validation set or None)``; ``train_csv`` and
    ``crops_dir`` are set (:func:`train_fec` checks that first)."""
    from exprsim.fec.crops import CropStore
    from exprsim.fec.dataset import BalancedTripletSampler, FecTripletDataset

    assert cfg.train_csv and cfg.crops_dir
    store = CropStore(cfg.crops_dir, "crops_dir of the training config")
    train_set = FecTripletDataset(cfg.train_csv, store, cfg.agreement)
    if len(train_set) == 0:
        raise DataError(
            f"{cfg.train_csv}: no {cfg.agreement}-agreement triplets with crops in {store.dir}"
        )
    sampler = BalancedTripletSampler(train_set.ttype, cfg.triplets_per_type, cfg.seed)
    val_set = FecTripletDataset(cfg.val_csv, store, cfg.agreement) if cfg.val_csv else None
    return train_set, sampler, val_set


def _fec_step(
    model: Any,
    opt: Any,
    loss_fn: Any,
    cfg: FECTrainConfig,
    batch: Any,
    images: Any,
    pos: Any,
    it: int,
    device: Any,
) -> tuple[float, float]:
    """One optimiser step on a batch of triplets; ``(loss, share of active triplets)``."""
    import torch

    from exprsim.models.embedder import preprocess_crops

    if cfg.hflip:
        flip = np.random.default_rng((cfg.seed, 7, it)).random(len(images)) < 0.5
        images = images.copy()
        images[flip] = images[flip, :, ::-1]
    emb = model(torch.from_numpy(preprocess_crops(images, cfg.preprocess)).to(device))
    p = torch.from_numpy(pos).to(device)
    per = loss_fn(
        emb[p[:, 0]],
        emb[p[:, 1]],
        emb[p[:, 2]],
        torch.from_numpy(batch.odd).to(device),
        torch.from_numpy(batch.ttype).to(device),
        per_sample=True,
    )
    loss = per.mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach()), float((per.detach() > 0).float().mean())


@exclusive_run
def train_fec(cfg: FECTrainConfig, out_dir: str | Path, progress: bool = True) -> FECTrainResult:
    """Train (or resume) a FEC embedding; see the module docstring for what is written.

    Nothing is written before the data and the network are checked; a resumed run may
    change :data:`MAY_CHANGE`, not shorten the run; the run holds a lock on ``out_dir``.

    Raises:
        DataError: ``train_csv`` / ``crops_dir`` unset or unusable, no triplets of a type.
        ModelError: unknown model or preprocessing that does not fit it.
        ValueError: ``out_dir`` holds a run with a different config, or one that has
            trained more iterations already; ``model_kwargs`` that do not fit the model.
    """
    import torch

    from exprsim.losses.fec_triplet import FECTripletLoss
    from exprsim.models.embedder import resolve_device

    if not cfg.train_csv or not cfg.crops_dir:
        raise DataError("FEC training needs train_csv and crops_dir in the config")
    _check_compat(cfg)
    run = RunFolder(out_dir)
    run.check(cfg, MAY_CHANGE)
    device = resolve_device(cfg.device)
    state = run.resume_state(cfg.iterations, "iteration", map_location=device)
    train_set, sampler, val_set = _fec_data(cfg)  # bad data fails before anything is written
    setup_torch(cfg.seed, cfg.num_threads)
    model = build_network(cfg.model, cfg.embedding_dim, cfg.model_kwargs).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = FECTripletLoss(margins=cfg.margins, squared=cfg.squared)
    digest = _data_digest(train_set, val_set)
    if state is not None:  # another network's checkpoint, or other data: refused before the claim
        check_weights(run.state_path, state.get("model"), model)
        check_same_data(run, state, digest)
    run.claim(cfg, MAY_CHANGE)
    start = _restore(run, model, opt, state, device)
    torch.manual_seed(cfg.seed * 1_000_003 + start)
    metrics: dict[str, float] = {}
    sums = np.zeros(3)  # loss, active share, steps
    t_log = time.perf_counter()
    model.train()
    bar = progress_bar(range(start, cfg.iterations), enabled=progress, desc="train fec", unit="it")
    for it in bar:
        batch = train_set.batch(sampler.batch(it))
        images, pos = train_set.crops(batch)
        sums += (*_fec_step(model, opt, loss_fn, cfg, batch, images, pos, it, device), 1.0)
        done = it + 1
        val_due = done % cfg.val_every == 0 or done == cfg.iterations
        val_due = val_due and val_set is not None and len(val_set) > 0
        # a row at every log step and at every validation (validating only when both fell
        # on one iteration validated at common multiples of the two, far less often)
        if done % cfg.log_every == 0 or done == cfg.iterations or val_due:
            n = max(sums[2], 1.0)
            metrics = {
                "iteration": done,
                "loss": sums[0] / n,
                "active_triplets": sums[1] / n,
                "seconds_per_it": (time.perf_counter() - t_log) / n,
            }
            sums[:], t_log = 0.0, time.perf_counter()
            bar.set_postfix(loss=f"{metrics['loss']:.4f}")
            if val_due:
                metrics.update(validate(model, cfg, val_set))
                model.train()
                log.info("iteration %d: %s", done, json.dumps(metrics))
            run.append_metrics(metrics)
        if done % cfg.checkpoint_every == 0 or done == cfg.iterations:
            _checkpoint(run, model, opt, done, digest)
    bar.close()
    if state is None and cfg.iterations == 0:
        _checkpoint(run, model, opt, 0, digest)  # still leave a loadable run
    model.eval()
    export_embedder(model, _embedder_config(cfg), run.dir)
    if start < cfg.iterations or not (run.dir / "train_result.json").is_file():
        result = {"iterations": cfg.iterations, "final_metrics": metrics}
        run.write_json("train_result.json", result)  # a finished run's is kept as it was
    return FECTrainResult(run.dir, max(cfg.iterations - start, 0), run.seconds(), metrics)


def _checkpoint(run: RunFolder, model: Any, opt: Any, iteration: int, digest: str) -> None:
    """Weights, optimiser, iterations done and the data's digest, in one atomic file (the
    weights also as ``last.safetensors``)."""
    weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    state = {"model": weights, "opt": opt.state_dict(), "iteration": iteration}
    run.save_state({**state, "data_digest": digest})
    run.save_weights(weights)


def _restore(
    run: RunFolder, model: Any, opt: Any, state: dict[str, Any] | None, device: Any
) -> int:
    """Load the checkpoint ``state`` into ``model`` and ``opt``; the iterations it had done."""
    if state is None:
        run.trim_metrics("iteration", 0)  # rows logged before a first checkpoint
        return 0
    with foreign_checkpoint(run.state_path):
        model.load_state_dict(state["model"] if "model" in state else _last_weights(run, device))
        opt.load_state_dict(state["opt"])
        start = int(state["iteration"])
    log.info("resuming %s from iteration %d", run.dir, start)
    run.trim_metrics("iteration", start)
    return start


def _last_weights(run: RunFolder, device: Any) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(run.dir / "last.safetensors"), device=str(device))
