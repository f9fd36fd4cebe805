"""What the readout scripts share (``prior_readout.py``, ``combine_readout.py``): an ensemble
with its run's validation faces and triplet draws, and one scored row per readout variant.
Nothing here looks at PublicTest."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from val_classes import class_scores  # a sibling script: this folder is on sys.path

RARE = ("disgust", "fear", "contempt")


@dataclass
class Probe:
    """A model (``net``: its ``exprnet_ens`` module) and the faces it is scored on."""

    embedder: Any
    net: Any
    train: Any
    val: Any
    tr_lab: np.ndarray
    va_lab: np.ndarray
    triplets: Any


def load_probe(run: str, model: str) -> Probe:
    """The hold-out of ``run`` (as the trainer scores it: 10 x 3,000 pooled triplet draws)
    and ``model`` loaded unfused, so that its members can be read one by one."""
    from exprsim.models.embedder import load_model
    from exprsim.training.ferplus import load_run_config, rescoring_config
    from exprsim.training.ferplus_data import load_data, validation_triplets

    emb = load_model(model, fuse=False)
    net = emb.model
    cfg = rescoring_config(load_run_config(run), 10, [net.readout_angle])
    train, val = load_data(cfg)
    trip = validation_triplets(val.dist, cfg)
    return Probe(emb, net, train, val, train.dist.argmax(1), val.dist.argmax(1), trip)


def score_readout(
    probe: Probe, z_tr: np.ndarray, z_va: np.ndarray, row: dict[str, Any], label: str
) -> dict:
    """``row`` plus the validation score, kNN11, macro-F1, AUC200 per class and the rare
    classes' mean AUC200 of the vectors ``z_tr`` / ``z_va``; printed as one line after
    ``label``."""
    from exprsim.training.ferplus import readout_score

    row = dict(row)
    row |= readout_score(z_tr, probe.tr_lab, z_va, probe.va_lab, probe.triplets)
    row |= class_scores(z_tr, probe.tr_lab, z_va, probe.va_lab)
    auc = row["auc200_per_class"]
    row["rare_auc200_mean"] = float(np.mean([auc[c] for c in RARE]))
    print(
        f"{label}: score {row['score']:.4f}  triplets {row['val_triplet_all']:.4f}  "
        f"kNN11 {row['knn11_acc']:.4f}  macro-F1 {row['knn11_macro_f1']:.4f}  "
        f"AUC200 {row['auc200_mean']:.4f}  rare AUC200 {row['rare_auc200_mean']:.4f} "
        + " ".join(f"{c} {auc[c]:.3f}" for c in RARE),
        flush=True,
    )
    return row


def write_rows(path: str | None, run: str, model: str, rows: list[dict[str, Any]]) -> None:
    if path:
        doc = {"run": run, "model": model, "rows": rows}
        Path(path).write_text(json.dumps(doc, indent=2) + "\n")
