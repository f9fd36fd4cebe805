"""Tiny end-to-end SGM training runs on synthetic data (objective, sampler, labels, raw space)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from exported import forward_by_hand
from exprsim.training.ferplus import train
from exprsim.training.ferplus_config import TrainConfig
from exprsim.training.ferplus_data import synthetic_votes


@pytest.fixture()
def sgm_cfg() -> TrainConfig:
    return TrainConfig(
        data="synthetic",
        max_train=160,
        val_fraction=0.2,
        epochs=1,
        batch_size=32,
        optimizer="adam",
        lr=1e-3,
        weight_decay=0.0,
        lr_schedule="constant",
        objective="sgm",
        sampler="balanced",
        per_class=4,
        augment=False,
        num_threads=1,
        model_kwargs={"widths": [8, 8, 8, 8]},
    )


def _metrics(out):
    return [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]


def test_sgm_train_export_load(tmp_path, sgm_cfg):
    from exprsim.models.embedder import load_model

    out = tmp_path / "sgm"
    res = train(sgm_cfg, out, progress=False)
    assert res.epochs_run == 1
    (m,) = _metrics(out)
    assert np.isfinite(m["loss"]) and 0 <= m["sgm_rep"] <= 2
    assert m["sgm_norm"] == pytest.approx(1.0, abs=1e-4)  # normalised space: constant term
    assert m["sgm_classes"] == pytest.approx(8.0)  # balanced batches hold every class
    assert 0.0 <= m["val_knn11_acc"] <= 1.0 and "val_cls_acc" not in m
    crops = synthetic_votes(3, seed=5).images
    e = load_model(str(out)).embed_crops(crops)
    # the exported network, run by hand from its saved weights, gives the same embeddings
    np.testing.assert_allclose(e, forward_by_hand(out, crops), atol=1e-5)
    assert np.ptp(e, axis=0).max() > 1e-3


def test_sgm_raw_space_labels_and_init(tmp_path, sgm_cfg):
    first = tmp_path / "a"
    train(replace(sgm_cfg, sgm_embedding="raw", sgm_target="majority"), first, progress=False)
    (m,) = _metrics(first)
    assert m["sgm_norm"] > 1.5  # pre-normalisation output: the norm term now acts
    labels = np.arange(160) % 3  # e.g. sub-class labels from exprsim.apps.subclasses
    out = tmp_path / "b"
    train(replace(sgm_cfg, init_from=str(first)), out, progress=False, labels=labels)
    (m,) = _metrics(out)
    assert m["sgm_classes"] == pytest.approx(3.0)
    with pytest.raises(ValueError, match="labels"):
        train(sgm_cfg, tmp_path / "c", progress=False, labels=labels[:10])


def test_bad_choice_refused(tmp_path, sgm_cfg):
    with pytest.raises(ValueError, match="objective"):
        train(replace(sgm_cfg, objective="nope"), tmp_path / "x", progress=False)
