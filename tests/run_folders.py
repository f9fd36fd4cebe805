"""Shared helper of the training and CLI tests: a run folder as `exprsim train` leaves it,
with an untrained network (for tests of what reads run folders, not of training)."""

from __future__ import annotations

from dataclasses import replace
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
