"""Training the perceptual VAE (VAE, M1, M2) on face-mesh landmarks of FER+ faces.

``exprsim train --config configs/pvae-m2.json`` (``"recipe": "pvae"``) calls
:func:`train_pvae`. Written to ``out_dir``: ``train_config.json`` (this config),
``pvae_config.json`` (the network), ``model.safetensors`` (the weights with the best
validation ELBO, with the training mean and fallback neutral face as buffers),
``history.json`` (validation terms every ``eval_every`` iterations) and ``result.json``.

**Data.** FER+ Training (PublicTest duplicates dropped) with the exprsim hold-out split
(:func:`exprsim.data.split.holdout_split`, 5%, seed 0): the paper keeps the iteration with the
highest validation ELBO, computed here on the held-out 5%. Faces where the mesh failed are
left out. PublicTest is never used.

**Neutral faces.** FER has no identities, so no person's neutral face is known. M1 and M2
get the documented fallback: the mean feature vector of the training faces whose FER+
majority vote is neutral (:attr:`PerceptualVAE.neutral`). The neutral input is then the same
constant for every face, so on FER M1 is a VAE with a different (asymmetric) network and M2
is that network with the triplet prior: the identity-removing effect of the neutral face
cannot be learnt from FER. :mod:`exprsim.pvae.codes` shows how a known neutral frame is
still used at inference (by an offset in feature space).

**Triplets (M2).** ``triplets_per_face * N`` clear-decision vote triplets
(:func:`exprsim.data.triplets.mine_vote_triplets`, Hellinger-gap rule, equal type shares)
among the training faces; the paper's posed set had 8,000 triplets for about 2,000 faces,
hence the default 4. Each odd-one-out triplet becomes one ordered triplet: one face of the
similar pair (chosen at random) is the reference, the other the positive, the odd face the
negative. Its weight is its clarity, ``w_t = gap_t / mean(gap)`` (mean weight 1, so gamma
keeps the meaning it had with the paper's unit-weight posed triplets; the paper weighted its
crowd-sourced triplets by their vote margins in the same spirit).

**Schedule.** Adam, KL annealed linearly from 0 to 1 over ``anneal_iterations`` (the paper's
best model annealed only the KL term, not the topological prior; ``anneal_prior`` anneals
both). The paper ran 100,000 iterations at learning rate 1e-4; on two shared CPU cores we
run far fewer (4,000) at 3e-4 (the configs). At 1e-3 all three variants diverged abruptly
(KL jumping from ~50 to thousands) after 2,000-3,500 steps.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from exprsim.config import check_ranges, save_json, seed_range
from exprsim.data.split import holdout_split
from exprsim.errors import ArgumentError, DataError
from exprsim.io import write_atomically, writing_model
from exprsim.progress import progress_bar
from exprsim.pvae.data import LandmarkData, fer_training_landmarks, synthetic_landmarks
from exprsim.pvae.features import FEATURE_DIM
from exprsim.training.run import (
    MAX_SYNTHETIC,
    RunFolder,
    array_digest,
    check_same_data,
    check_weights,
    exclusive_run,
    foreign_checkpoint,
    setup_torch,
)

log = logging.getLogger(__name__)

#: Widest layer or latent a run may ask for (``latent_dim``, ``*_hidden``): 10**9 failed in
#: the allocator with a stack of torch's lines
MAX_WIDTH = 65_536
#: Most faces or triplets in one step (``batch_size``, ``triplet_batch``)
MAX_COUNT = 65_536
#: Most Monte Carlo samples per face (``samples``, ``triplet_samples``) and triplets per face
MAX_SAMPLES = 1024


@dataclass(frozen=True)
class PVAETrainConfig:
    """A perceptual-VAE training run (``configs/pvae-*.json``; saved as ``train_config.json``).

    Attributes:
        kind: always ``"pvae"`` (dispatch key of ``exprsim train``).
        model: registered landmark model (``pvae-vae``, ``pvae-m1``, ``pvae-m2``).
        data: ``"ferplus"`` or ``"synthetic"`` (tests).
        landmark_cache: folder of the cached FER meshes (:mod:`exprsim.pvae.features`).
        data_dir: FER folder (default: found automatically).
        latent_dim, encoder_hidden, decoder_hidden, dropout: network shape (``None``: the
            registered model's default).
        iterations: optimiser steps.
        batch_size: faces per data batch (``B``).
        samples: Monte Carlo samples per face for the reconstruction term (``L``).
        triplet_batch: triplets per step (``V``).
        triplet_samples: latent samples per triplet face (``M``).
        lr: Adam learning rate.
        recon_variance: reconstruction variance ``sigma^2``.
        gamma: topological variance (M2).
        anneal_iterations: KL weight rises linearly 0 -> 1 over this many steps.
        anneal_prior: anneal the topological prior too.
        triplets_per_face: triplet pool size ``T`` over training faces ``N``.
        triplet_threshold: Hellinger-gap rule of the mined triplets.
        eval_every: validation ELBO every this many steps (best one kept).
        val_fraction: hold-out share of Training.
        seed: seed of split, triplets, initialisation and sampling.
        max_train: use only the first ``max_train`` Training faces (smoke runs).
        threads: torch intra-op threads.
        max_seconds: stop early (after a validation) once training has run this long,
            in wall time since this process started it (the time a run stopped with
            Ctrl-Z was stopped counts).
    """

    kind: str = "pvae"
    model: str = "pvae-m2"
    data: str = "ferplus"
    landmark_cache: str = "runs/pvae"
    data_dir: str | None = None
    latent_dim: int = 30
    encoder_hidden: tuple[int, ...] | None = None
    decoder_hidden: tuple[int, ...] | None = None
    dropout: float = 0.1
    iterations: int = 4000
    batch_size: int = 200
    samples: int = 1
    triplet_batch: int = 10
    triplet_samples: int = 10
    lr: float = 3e-4
    recon_variance: float = 1e-3
    gamma: float = 0.04
    anneal_iterations: int = 4000
    anneal_prior: bool = False
    triplets_per_face: float = 4.0
    triplet_threshold: float = 0.2
    eval_every: int = 250
    val_fraction: float = 0.05
    seed: int = 0
    max_train: int | None = None
    threads: int = 1
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        # checked when the config is made or read back: a bad value fails before any work
        if self.kind != "pvae":
            raise ArgumentError(f"PVAETrainConfig.kind must be 'pvae', got {self.kind!r}")
        enc, dec = self.encoder_hidden or (), self.decoder_hidden or ()
        widths = f"widths in [1, {MAX_WIDTH}]"
        ranges = {
            "latent_dim": (1 <= self.latent_dim <= MAX_WIDTH, f"in [1, {MAX_WIDTH}]"),
            "encoder_hidden": (all(1 <= h <= MAX_WIDTH for h in enc), f"{widths} (or null)"),
            "decoder_hidden": (all(1 <= h <= MAX_WIDTH for h in dec), f"{widths} (or null)"),
            "dropout": (0 <= self.dropout < 1, "in [0, 1)"),
            "iterations": (self.iterations >= 0, ">= 0"),
            "batch_size": (1 <= self.batch_size <= MAX_COUNT, f"in [1, {MAX_COUNT}]"),
            "samples": (1 <= self.samples <= MAX_SAMPLES, f"in [1, {MAX_SAMPLES}]"),
            "triplet_batch": (1 <= self.triplet_batch <= MAX_COUNT, f"in [1, {MAX_COUNT}]"),
            "triplet_samples": (
                1 <= self.triplet_samples <= MAX_SAMPLES,
                f"in [1, {MAX_SAMPLES}]",
            ),
            "lr": (self.lr > 0, "> 0"),
            "recon_variance": (self.recon_variance > 0, "> 0"),
            "gamma": (self.gamma > 0, "> 0"),
            "anneal_iterations": (self.anneal_iterations >= 0, ">= 0"),
            "triplets_per_face": (
                0 < self.triplets_per_face <= MAX_SAMPLES,
                f"in (0, {MAX_SAMPLES}]",
            ),
            "triplet_threshold": (0 <= self.triplet_threshold < math.inf, "finite and >= 0"),
            "eval_every": (self.eval_every >= 1, ">= 1"),
            "val_fraction": (0 <= self.val_fraction < 1, "in [0, 1)"),
            "seed": seed_range(self.seed),
            "max_train": (
                self.max_train is None
                or 1 <= self.max_train <= (MAX_SYNTHETIC if self.data == "synthetic" else math.inf),
                f">= 1 (or null; at most {MAX_SYNTHETIC} with data 'synthetic')",
            ),
            "threads": (self.threads >= 0, ">= 0"),
            "max_seconds": (self.max_seconds is None or self.max_seconds >= 0, ">= 0 (or null)"),
        }
        check_ranges(self, ranges)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PVAETrainResult:
    """What :func:`train_pvae` did.

    Attributes:
        out_dir: the run folder.
        iterations_run: optimiser steps taken (fewer than configured after ``max_seconds``).
        best_iteration: step of the kept weights.
        best_val_loss: their validation negative ELBO per face (incl. the prior for M2).
        seconds: wall time.
        n_train, n_val: faces used (mesh found).
        n_triplets: triplet pool size (0 for VAE / M1).
    """

    out_dir: Path
    iterations_run: int
    best_iteration: int
    best_val_loss: float
    seconds: float
    n_train: int
    n_val: int
    n_triplets: int

    @property
    def epochs_run(self) -> int:
        return self.iterations_run

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["out_dir"] = str(self.out_dir)
        return d


def ordered_triplets(
    dist: np.ndarray,
    labels: np.ndarray,
    n: int,
    threshold: float,
    rng: np.random.Generator,
    type_shares: tuple[float, float, float] | None = (1 / 3, 1 / 3, 1 / 3),
) -> tuple[np.ndarray, np.ndarray]:
    """Mine vote triplets and order them as ``(ref, +, -)`` with clarity weights.

    Args:
        dist: ``(N, 8)`` vote distributions; labels: ``(N,)`` majority labels.
        n: triplets wanted; threshold: Hellinger-gap rule; rng: generator.
        type_shares: one/two/three-class shares (``None``: as random triplets come).

    Returns:
        ``(n, 3)`` int64 face indices (reference, positive, negative) and ``(n,)`` float32
        weights ``gap / mean(gap)``.
    """
    from exprsim.data.triplets import mine_vote_triplets

    ts = mine_vote_triplets(dist, labels, n, rng, threshold, type_shares)
    faces = np.stack([ts.i, ts.j, ts.k], axis=1)
    pair = np.array([[1, 2], [0, 2], [0, 1]])[ts.odd]  # positions of the similar pair
    flip = rng.random(len(ts)) < 0.5
    pair[flip] = pair[flip][:, ::-1]
    rows = np.arange(len(ts))
    out = np.stack([faces[rows, pair[:, 0]], faces[rows, pair[:, 1]], faces[rows, ts.odd]], 1)
    gap = ts.gap.astype(np.float64)
    w = gap / gap.mean() if gap.mean() > 0 else np.ones_like(gap)
    return out.astype(np.int64), w.astype(np.float32)


def _model_kwargs(cfg: PVAETrainConfig, dim: int) -> dict[str, Any]:
    kw: dict[str, Any] = {"input_dim": dim, "latent_dim": cfg.latent_dim, "dropout": cfg.dropout}
    if cfg.encoder_hidden is not None:
        kw["encoder_hidden"] = tuple(cfg.encoder_hidden)
    if cfg.decoder_hidden is not None:
        kw["decoder_hidden"] = tuple(cfg.decoder_hidden)
    return kw


#: fewest faces a perceptual-VAE run trains on, and validates on
MIN_TRAIN_FACES, MIN_VAL_FACES = 8, 3  # 3: the M2 variants' validation triplets


def _pvae_data(cfg: PVAETrainConfig, progress: bool = True) -> tuple[LandmarkData, dict[str, Any]]:
    data, extra = _load_pvae_data(cfg, progress)
    n_tr, n_va = len(data.x_train), len(data.x_val)
    if n_tr < MIN_TRAIN_FACES or n_va < MIN_VAL_FACES:
        found = (
            f" (face mesh found on {extra['mesh_found']} of {extra['faces']} faces)"
            if "mesh_found" in extra
            else ""
        )
        raise DataError(
            f"a perceptual-VAE run needs at least {MIN_TRAIN_FACES} training and "
            f"{MIN_VAL_FACES} validation faces with a face mesh; got {n_tr} and {n_va}{found}: "
            "use more faces (max_train) or a larger val_fraction"
        )
    return data, extra


def _load_pvae_data(
    cfg: PVAETrainConfig, progress: bool = True
) -> tuple[LandmarkData, dict[str, Any]]:
    if cfg.data == "synthetic":
        x, dist = synthetic_landmarks(cfg.max_train or 400, seed=cfg.seed)
        maj = dist.argmax(axis=1).astype(np.int64)
        tr, va = holdout_split(len(x), max(cfg.val_fraction, 0.1), cfg.seed)
        return LandmarkData(x[tr], x[va], dist[tr], dist[va], maj[tr], maj[va]), {}
    if cfg.data == "ferplus":
        data, extra = fer_training_landmarks(
            cfg.landmark_cache,
            cfg.data_dir,
            cfg.val_fraction,
            cfg.seed,
            cfg.max_train,
            progress=progress,
        )
        if data.x_train.shape[1] != FEATURE_DIM:
            raise ArgumentError(f"expected {FEATURE_DIM} features, got {data.x_train.shape[1]}")
        return data, dict(extra)
    raise ArgumentError(f"unknown data {cfg.data!r}; expected 'ferplus' or 'synthetic'")


class _PVAETrainer:
    """State of one perceptual-VAE run: model, triplet pools, validation, best weights."""

    def __init__(self, cfg: PVAETrainConfig, data: LandmarkData) -> None:
        import torch

        from exprsim.pvae.model import create_landmark_model

        self.cfg = cfg
        dim = data.x_train.shape[1]
        self.model = create_landmark_model(cfg.model, **_model_kwargs(cfg, dim))
        neutral_rows = data.maj_train == 0
        neutral = (data.x_train[neutral_rows] if neutral_rows.any() else data.x_train).mean(0)
        self.model.set_statistics(
            torch.from_numpy(data.x_train.mean(axis=0)), torch.from_numpy(neutral)
        )
        self.x_tr, self.x_va = torch.from_numpy(data.x_train), torch.from_numpy(data.x_val)
        #: what the run trains and validates on (a resumed run checks it)
        self.digest = array_digest(data.x_train, data.x_val)
        self.use_prior = self.model.config.variant == "m2"
        self.n_pool = round(cfg.triplets_per_face * len(self.x_tr)) if self.use_prior else 0
        if self.use_prior:
            rng = np.random.default_rng(cfg.seed)
            trip, w = ordered_triplets(
                data.dist_train, data.maj_train, self.n_pool, cfg.triplet_threshold, rng
            )
            vtrip, vw = ordered_triplets(
                data.dist_val,
                data.maj_val,
                max(10, round(cfg.triplets_per_face * len(self.x_va))),
                cfg.triplet_threshold,
                np.random.default_rng(cfg.seed + 1),
                type_shares=None,
            )
            self.trip, self.w = torch.from_numpy(trip), torch.from_numpy(w)
            self.vtrip, self.vw = torch.from_numpy(vtrip), torch.from_numpy(vw)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.history: list[dict[str, float]] = []
        self.best = (math.inf, 0)
        self.best_state: dict[str, Any] = {}

    def triplet_z(self, feats: Any, faces: Any) -> tuple[Any, Any, Any]:
        """``(M, V, K)`` latent samples of the reference, positive and negative faces."""
        from exprsim.pvae.model import sample_latent

        s = self.cfg.triplet_samples
        mu, logvar = self.model.encode(feats[faces.reshape(-1)])
        z = sample_latent(mu, logvar, s).reshape(s, *faces.shape, -1)
        return z[:, :, 0], z[:, :, 1], z[:, :, 2]

    def loss(self, xb: Any, samples: int, beta: float, gamma: float, faces: Any) -> Any:
        """The ELBO terms of a batch (and of triplets ``(feats, faces, weights)`` if M2)."""
        from exprsim.losses.pvae import pvae_loss

        x_hat, mu, logvar, _ = self.model(xb, samples=samples)
        tz = tw = None
        if faces is not None:
            feats, idx, w = faces
            tz, tw = self.triplet_z(feats, idx), w
        cfg = self.cfg
        return pvae_loss(
            xb, x_hat, mu, logvar, cfg.recon_variance, beta, tz, tw, gamma, cfg.triplets_per_face
        )

    def step(self, step: int, idx: Any) -> None:
        import torch

        cfg = self.cfg
        beta = min(1.0, step / cfg.anneal_iterations) if cfg.anneal_iterations > 0 else 1.0
        faces, gamma = None, cfg.gamma
        if self.use_prior:
            pick = torch.randint(0, len(self.trip), (cfg.triplet_batch,))
            faces = (self.x_tr, self.trip[pick], self.w[pick])
            if cfg.anneal_prior:
                gamma = cfg.gamma / max(beta, 1e-6)
        terms = self.loss(self.x_tr[idx], cfg.samples, beta, gamma, faces)
        self.opt.zero_grad(set_to_none=True)
        terms.loss.backward()
        self.opt.step()

    def validate(self, step: int) -> dict[str, float]:
        import torch

        self.model.eval()
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(self.cfg.seed + 12345)
        faces = (self.x_va, self.vtrip, self.vw) if self.use_prior else None
        with torch.no_grad():
            terms = self.loss(self.x_va, 1, 1.0, self.cfg.gamma, faces)
        torch.random.set_rng_state(gen_state)
        row = {
            "iteration": step,
            "val_loss": float(terms.loss),
            "recon": float(terms.recon),
            "kl": float(terms.kl),
            "topo": float(terms.topo),
        }
        self.history.append(row)
        log.info("step %d: %s", step, row)
        if row["val_loss"] < self.best[0]:
            self.best = (row["val_loss"], step)
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.model.train()
        return row

    def state(self, step: int) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "opt": self.opt.state_dict(),
            "iteration": step,
            "best_loss": self.best[0],
            "best_iteration": self.best[1],
            "best_state": self.best_state,
            "history": json.dumps(self.history),
            "data_digest": self.digest,
        }

    def restore(self, state: dict[str, Any]) -> int:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.best = (float(state["best_loss"]), int(state["best_iteration"]))
        self.best_state = dict(state["best_state"])
        self.history = json.loads(state["history"])
        return int(state["iteration"])


@exclusive_run
def train_pvae(cfg: PVAETrainConfig, out_dir: str | Path, progress: bool = True) -> PVAETrainResult:
    """Train (or resume) one perceptual-VAE variant (module docstring) into ``out_dir``.

    A checkpoint is written at every validation (``eval_every``); a re-run with the same
    config resumes from it (it may run longer, not shorter). Batches are drawn per
    validation interval from ``(seed, interval)``, so a resumed run sees the batches an
    uninterrupted one would. Nothing is written before the data and the network are
    checked; the run holds a lock on ``out_dir``; a finished run's ``result.json`` is kept
    when a re-run trains nothing.

    Args:
        cfg: the run.
        out_dir: output folder.
        progress: tqdm bar.
    """
    import torch

    run = RunFolder(out_dir)
    may_change = ("iterations", "threads", "max_seconds")
    run.check(cfg, may_change)
    state = run.resume_state(cfg.iterations, "iteration")  # before claim() rewrites
    data, extra = _pvae_data(cfg, progress)
    setup_torch(cfg.seed, max(1, cfg.threads))
    tr = _PVAETrainer(cfg, data)
    if state is not None:  # another network's checkpoint, or other data: refused before the claim
        check_weights(run.state_path, state.get("model"), tr.model)
        check_same_data(run, state, tr.digest)
    run.claim(cfg, may_change)
    save_json(tr.model.config, run.dir / "pvae_config.json")
    start = 0
    if state is not None:
        with foreign_checkpoint(run.state_path):
            start = tr.restore(state)
    run.trim_metrics("iteration", start)  # rows logged after the last checkpoint
    step = start
    tr.model.train()
    n_tr, bs = len(tr.x_tr), cfg.batch_size
    for step in progress_bar(
        range(start + 1, cfg.iterations + 1), enabled=progress, desc=cfg.model, initial=start
    ):
        k = (step - 1) % cfg.eval_every  # batches: a function of (seed, interval, k)
        if k == 0 or step == start + 1:
            torch.manual_seed(cfg.seed * 1_000_003 + (step - 1) // cfg.eval_every)
            # the interval's steps this run takes (an eval_every past the iterations drew
            # billions of permutations); the first laps drawn are the same whatever their number
            steps = min(cfg.eval_every, cfg.iterations - (step - 1 - k))
            laps = -(-steps * bs // n_tr)
            order = torch.cat([torch.randperm(n_tr) for _ in range(laps)])
        tr.step(step, order[k * bs : (k + 1) * bs])
        if step % cfg.eval_every == 0 or step == cfg.iterations:
            run.append_metrics(tr.validate(step))
            run.save_state(tr.state(step))
            if cfg.max_seconds is not None and run.seconds() > cfg.max_seconds:
                log.warning("stopping after %d iterations (max_seconds)", step)
                break
    if tr.best_state:
        tr.model.load_state_dict(tr.best_state)
    # the checkpoint is saved; a kill before the weights says so (a finished run run again,
    # nothing trained now, keeps its model usable when the write fails before it changed)
    with writing_model(run.dir, again=step == start):
        run.save_weights(tr.model.state_dict(), "model.safetensors")
    history = (json.dumps(tr.history, indent=1) + "\n").encode()
    write_atomically(run.dir / "history.json", lambda f: f.write(history))
    res = PVAETrainResult(
        out_dir=run.dir,
        iterations_run=step - start,
        best_iteration=tr.best[1],
        best_val_loss=tr.best[0],
        seconds=run.seconds(),
        n_train=n_tr,
        n_val=len(tr.x_va),
        n_triplets=tr.n_pool,
    )
    if step > start or not (run.dir / "result.json").is_file():
        run.write_json("result.json", res.to_dict() | extra)
    return res


__all__ = [
    "LandmarkData",
    "PVAETrainConfig",
    "PVAETrainResult",
    "ordered_triplets",
    "synthetic_landmarks",
    "train_pvae",
]
