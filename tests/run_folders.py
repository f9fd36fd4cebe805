"""Shared helper of the training and CLI tests: a run folder as `exprsim train` leaves it,
with an untrained network (for tests of what reads run folders, not of training)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any


def tiny_config(**kw: Any) -> Any:
    """A FER+ ``TrainConfig`` that trains in a second: synthetic faces, a tiny
    ``exprnet_s``, one epoch; ``kw`` replaces fields."""
    from exprsim.training.ferplus_config import TrainConfig

    base = TrainConfig(
        data="synthetic", max_train=64, val_fraction=0.25, epochs=1, batch_size=16,
        triplet_weight=0.0, num_threads=1, augment=False, model_kwargs={"widths": [8, 8, 8, 8]},
    )  # fmt: skip
    return replace(base, **kw)


def tiny_sgm(levels: int, max_train: int = 120) -> dict[str, Any]:
    """An ``sgm-subspaces`` config (a dict for ``train_from_dict``) that trains in
    seconds: ``levels`` levels of one epoch of a tiny ``exprnet_s`` on synthetic faces."""
    base = {
        "data": "synthetic", "max_train": max_train, "val_fraction": 0.2, "epochs": 1,
        "batch_size": 32, "optimizer": "adam", "lr": 1e-3, "objective": "sgm",
        "sampler": "balanced", "per_class": 4, "augment": False, "num_threads": 1,
        "model_kwargs": {"widths": [8, 8, 8, 8]},
    }  # fmt: skip
    return {"recipe": "sgm-subspaces", "base": base, "levels": levels}


def tiny_hybrid(**kw: Any) -> Any:
    """:func:`tiny_config` of a tiny ``exprnet_v`` with the hybrid readout (angles 0, 45)."""
    hybrid = {"readout": "hybrid", "stages": [[8], [8], [16], [16]]}
    base: dict[str, Any] = {"model_kwargs": hybrid, "readout_angles": (0.0, 45.0)}
    return tiny_config(model="exprnet_v", **{**base, **kw})


def export_untrained(cfg: Any, folder: Path, torch_seed: int = 0) -> Path:
    """``folder`` claimed for the FER+ ``cfg`` (its ``train_config.json``) and holding the
    exported untrained network of ``cfg`` (``config.json`` + ``model.safetensors``)."""
    import torch

    from exprsim.models.registry import create_model
    from exprsim.training import ferplus
    from exprsim.training.run import RunFolder

    torch.manual_seed(torch_seed)
    net = create_model(cfg.model, embedding_dim=cfg.embedding_dim, **cfg.model_kwargs)
    RunFolder(folder).claim(cfg)
    ferplus.export(net, cfg, folder)
    return folder


def pvae_run(
    folder: Path, dim: int, *, weights: bool = True, cache: str = "runs/pvae", **train: Any
) -> Path:
    """A perceptual-VAE run folder with random weights on ``dim`` features (no weights
    with ``weights=False``: a run not exported yet) whose ``train_config.json`` names the
    landmark ``cache`` (the configs' relative ``runs/pvae``) and holds ``train``'s keys."""
    import json

    from safetensors.torch import save_file

    from exprsim.config import save_json
    from exprsim.pvae.model import PerceptualVAE, PVAEConfig

    cfg = PVAEConfig(
        variant="vae", input_dim=dim, latent_dim=3, encoder_hidden=(8,), decoder_hidden=(8,)
    )
    folder.mkdir(parents=True)
    save_json(cfg, folder / "pvae_config.json")
    if weights:
        state = PerceptualVAE(cfg).state_dict()
        save_file({k: v.contiguous() for k, v in state.items()}, folder / "model.safetensors")
    record = {"kind": "pvae", "model": "pvae-vae", "landmark_cache": cache, **train}
    (folder / "train_config.json").write_text(json.dumps(record))
    return folder


def stub_fer_landmarks(monkeypatch: Any, note: Any) -> None:
    """FER+ meshes, the PublicTest split and its triplets replaced by small random
    stand-ins (40 training faces, 30 test faces, 10 triplets); every stub calls
    ``note(what, cache=..., data_dir=..., progress=...)`` with what it was asked for
    (``what``: ``"training"``, ``"test"`` or ``"split"``)."""
    from types import SimpleNamespace

    import numpy as np

    import exprsim.data.fer as fer
    import exprsim.data.triplets as triplets
    import exprsim.pvae.data as pdata
    import exprsim.pvae.features as features
    from exprsim.pvae.data import LandmarkData
    from exprsim.pvae.features import FEATURE_DIM

    rng = np.random.default_rng(0)
    n_train, n_test = 40, 30

    def training(cache: Any, data_dir: Any, *args: Any, **kw: Any) -> Any:
        note("training", cache=cache, data_dir=data_dir, progress=kw.get("progress", True))
        x = rng.normal(size=(n_train, FEATURE_DIM)).astype(np.float32)
        dist = rng.dirichlet(np.ones(8), n_train).astype(np.float32)
        maj = np.arange(n_train) % 4
        data = LandmarkData(x, x[:4], dist, dist[:4], maj, maj[:4])
        return data, {"faces": n_train, "mesh_found": n_train, "success_rate": 1.0}

    def test_meshes(usage: str, cache: Any, data_dir: Any = None, **kw: Any) -> Any:
        note("test", cache=cache, data_dir=data_dir, progress=kw.get("progress", True))
        x = rng.normal(size=(n_test, FEATURE_DIM)).astype(np.float32)
        return SimpleNamespace(features=lambda: x, ok=np.ones(n_test, bool), success_rate=1.0)

    def split(usage: str, data_dir: Any = None, **kw: Any) -> Any:
        note("split", cache=None, data_dir=data_dir, progress=None)
        return SimpleNamespace(majority=np.arange(n_test) % 4)

    def draw(test: Any, n: int = 3000, seed: int = 0, **kw: Any) -> Any:
        i, j, k = ((np.arange(10) + s) % n_test for s in (0, 1, 2))
        return SimpleNamespace(i=i, j=j, k=k, odd=np.arange(10) % 3)

    monkeypatch.setattr(pdata, "fer_training_landmarks", training)
    monkeypatch.setattr(features, "extract_fer_landmarks", test_meshes)
    monkeypatch.setattr(fer, "load_ferplus", split)
    monkeypatch.setattr(triplets, "validation_triplets", draw)


@dataclass
class FakeSplit:
    """A FER+ split as the mesh extraction reads it (``images``, ``rows``, ``len``): the
    perceptual-VAE mesh cache tests' stand-in for ``load_ferplus``."""

    images: Any
    rows: Any

    def __len__(self) -> int:
        return len(self.images)
