"""A tiny end-to-end training run on synthetic data: train, resume, export, load."""

from __future__ import annotations

import json

import numpy as np
import pytest

from exprsim.config import load_json
from exprsim.train import TrainConfig, train


@pytest.fixture()
def tiny_cfg() -> TrainConfig:
    return TrainConfig(
        data="synthetic",
        max_train=256,
        val_fraction=0.25,
        epochs=2,
        batch_size=64,
        lr=0.05,
        triplets_per_type=8,
        triplet_threshold=0.1,
        num_threads=1,
    )


@pytest.mark.slow
def test_train_resume_export_load(tmp_path, tiny_cfg):
    from exprsim.models.embedder import load_model

    out = tmp_path / "run"
    res = train(tiny_cfg, out, progress=False)
    assert res.epochs_run == 2
    lines = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2]
    assert all(np.isfinite(m["loss"]) for m in lines)
    assert lines[0]["n_triplets"] > 0  # triplets were mined and used
    assert load_json(TrainConfig, out / "train_config.json") == tiny_cfg

    # resume: asking for 3 epochs runs exactly one more
    from dataclasses import replace

    res2 = train(replace(tiny_cfg, epochs=3), out, progress=False)
    assert res2.epochs_run == 1
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(s)["epoch"] for s in lines] == [1, 2, 3]

    emb = load_model(str(out))
    crops = np.random.default_rng(0).integers(0, 255, size=(5, 48, 48), dtype=np.uint8)
    e = emb.embed_crops(crops)
    assert e.shape == (5, 16) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)


def test_changed_config_refused(tmp_path, tiny_cfg):
    from dataclasses import replace

    out = tmp_path / "run"
    out.mkdir()
    from exprsim.config import save_json

    save_json(tiny_cfg, out / "train_config.json")
    with pytest.raises(ValueError, match="different config"):
        train(replace(tiny_cfg, lr=0.1), out, progress=False)


def test_lr_schedule_warmup_then_cosine(tiny_cfg):
    from dataclasses import replace

    from exprsim.train import _lr_at

    cfg = replace(tiny_cfg, epochs=10, warmup_epochs=1.0, lr=0.1)
    assert _lr_at(cfg, 0.5) == pytest.approx(0.05)
    assert _lr_at(cfg, 1.0) == pytest.approx(0.1)
    assert _lr_at(cfg, 5.5) == pytest.approx(0.05)
    assert _lr_at(cfg, 10.0) == pytest.approx(0.0, abs=1e-12)


def test_batch_triplets_follow_the_vote_rule():
    from exprsim.data.triplets import decide_odd
    from exprsim.train import batch_triplets, synthetic_votes

    data = synthetic_votes(128, seed=1)
    trip = batch_triplets(data.dist, 30, 0.2, np.random.default_rng(0))
    assert trip is not None and len(trip.i) == 30
    assert np.bincount(trip.ttype, minlength=3).tolist() == [10, 10, 10]
    odd, gap = decide_odd(np.sqrt(data.dist), trip.i, trip.j, trip.k)
    np.testing.assert_array_equal(odd, trip.odd)
    assert (gap >= 0.2).all()


def test_augment_batch_keeps_shape_and_changes_pixels():
    import torch

    from exprsim.train import augment_batch

    x = torch.randn(16, 1, 48, 48)
    y = augment_batch(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    assert not torch.allclose(x, y)
    y2 = augment_batch(x, torch.Generator().manual_seed(0))
    assert torch.equal(y, y2)  # deterministic given the generator
