"""Shared test helper: run an exported model folder by hand, without ``Embedder``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def forward_by_hand(run_dir: Path, crops: np.ndarray) -> np.ndarray:
    """The exported network run without ``Embedder``: a fresh module with the saved weights
    (strict), the saved preprocessing, rows normalised here in float64."""
    import torch
    from safetensors.torch import load_file

    from exprsim.models.embedder import EmbedderConfig, preprocess_crops
    from exprsim.models.registry import create_model

    cfg = EmbedderConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    net = create_model(cfg.model, embedding_dim=cfg.embedding_dim, **cfg.model_kwargs)
    net.load_state_dict(load_file(str(run_dir / "model.safetensors")))
    with torch.no_grad():
        raw = net.eval()(torch.from_numpy(preprocess_crops(crops, cfg.preprocess)))
    raw = raw.double().numpy()
    return raw / np.linalg.norm(raw, axis=1, keepdims=True)
