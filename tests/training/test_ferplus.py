"""A tiny end-to-end training run on synthetic data: train, resume, export, load."""

from __future__ import annotations

import json

import numpy as np
import pytest

from exported import forward_by_hand
from exprsim.config import from_dict
from exprsim.models.embedder import PreprocessConfig
from exprsim.training.ferplus import train
from exprsim.training.ferplus_config import TrainConfig


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
    saved = json.loads((out / "train_config.json").read_text())
    assert saved.pop("recipe") == "ferplus"  # the file runs again with `exprsim train`
    assert from_dict(TrainConfig, saved) == tiny_cfg
    from exprsim.training.registry import config_from_dict

    assert config_from_dict(json.loads((out / "train_config.json").read_text()))[1] == tiny_cfg

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
    # the loaded model is the trained network (not, say, a fresh one): same outputs as the
    # saved weights run by hand, and different crops get different embeddings
    np.testing.assert_allclose(e, forward_by_hand(out, crops), atol=1e-5)
    assert np.ptp(e, axis=0).max() > 1e-3


def test_changed_config_refused(tmp_path, tiny_cfg):
    from dataclasses import replace

    out = tmp_path / "run"
    out.mkdir()
    from exprsim.config import save_json

    save_json(tiny_cfg, out / "train_config.json")
    (out / "state.pt").write_bytes(b"x")  # it trained: a checkpoint (refused before read)
    with pytest.raises(ValueError, match="different config"):
        train(replace(tiny_cfg, lr=0.1), out, progress=False)


def test_lr_schedule_warmup_then_cosine(tiny_cfg):
    from dataclasses import replace

    from exprsim.training.ferplus import _lr_at

    cfg = replace(tiny_cfg, epochs=10, warmup_epochs=1.0, lr=0.1)
    assert _lr_at(cfg, 0.5) == pytest.approx(0.05)
    assert _lr_at(cfg, 1.0) == pytest.approx(0.1)
    assert _lr_at(cfg, 5.5) == pytest.approx(0.05)
    assert _lr_at(cfg, 10.0) == pytest.approx(0.0, abs=1e-12)


def test_batch_triplets_follow_the_vote_rule():
    from exprsim.data.triplets import decide_odd
    from exprsim.training.ferplus_data import batch_triplets, synthetic_votes

    data = synthetic_votes(128, seed=1)
    trip = batch_triplets(data.dist, 30, 0.2, np.random.default_rng(0))
    assert trip is not None and len(trip.i) == 30
    assert np.bincount(trip.ttype, minlength=3).tolist() == [10, 10, 10]
    odd, gap = decide_odd(np.sqrt(data.dist), trip.i, trip.j, trip.k)
    np.testing.assert_array_equal(odd, trip.odd)
    assert (gap >= 0.2).all()


def test_validation_triplets_pool_equal_draws():
    from exprsim.metrics import triplet_accuracy
    from exprsim.training.ferplus_config import TrainConfig
    from exprsim.training.ferplus_data import batch_triplets, synthetic_votes
    from exprsim.training.ferplus_data import validation_triplets as vt

    data = synthetic_votes(300, seed=2)
    one = vt(data.dist, TrainConfig())  # default: one draw, seed 0, min(3000, faces)
    ref = batch_triplets(data.dist, 300, 0.2, np.random.default_rng(0))
    np.testing.assert_array_equal(one.i, ref.i)
    pooled = vt(data.dist, TrainConfig(val_triplets=90, val_triplet_draws=3))
    assert len(pooled.i) == 270
    z = np.random.default_rng(3).normal(size=(300, 8)).astype(np.float32)
    per_draw = []
    for seed in range(3):
        t = batch_triplets(data.dist, 90, 0.2, np.random.default_rng(seed))
        per_draw.append(triplet_accuracy(z, t.i, t.j, t.k, t.odd, t.ttype)["all"])
    got = triplet_accuracy(z, pooled.i, pooled.j, pooled.k, pooled.odd, pooled.ttype)["all"]
    assert got == pytest.approx(np.mean(per_draw))
    assert vt(data.dist[:5], TrainConfig(val_triplets=90)) is None  # too few faces


def test_val_drop_twins_leaves_out_faces_like_a_training_face():
    from exprsim.data.twins import near_twin_similarity
    from exprsim.training.ferplus_config import TrainConfig
    from exprsim.training.ferplus_data import load_data

    base = TrainConfig(data="synthetic", max_train=240, val_fraction=0.25)
    tr, va = load_data(base)
    sim = near_twin_similarity(va.images, tr.images)
    cut = float(np.median(sim))  # half of the validation faces have a closer twin
    tr2, va2 = load_data(TrainConfig(data="synthetic", max_train=240, val_fraction=0.25,
                                     val_drop_twins=cut))  # fmt: skip
    np.testing.assert_array_equal(tr2.images, tr.images)  # training faces untouched
    np.testing.assert_array_equal(va2.images, va.images[sim < cut])
    assert 0 < len(va2.images) < len(va.images)


def test_training_input_equals_embedder_input():
    """One preprocessing path: with augmentation off, the trainer feeds the network exactly
    what :class:`Embedder` feeds it for the same crop."""
    import torch

    from exprsim.models.embedder import Embedder, EmbedderConfig, PreprocessConfig
    from exprsim.training.ferplus import _to_input

    crops = np.random.default_rng(3).integers(0, 256, size=(6, 48, 48), dtype=np.uint8)

    class Spy(torch.nn.Module):
        """Records the input it is given; returns some unit vectors."""

        def __init__(self) -> None:
            super().__init__()
            self.seen: list[torch.Tensor] = []

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.seen.append(x.clone())
            return torch.nn.functional.normalize(x.flatten(1)[:, :16] + 1.0, dim=1)

    for pre in (PreprocessConfig(normalize="per_image"), PreprocessConfig()):
        spy = Spy()
        Embedder(spy, EmbedderConfig("spy", preprocess=pre)).embed_crops(crops)
        seen = spy.seen
        assert torch.equal(seen[0], _to_input(crops, pre))
        # and an independent reference for the per-image rule: (x - mean) / (std + 1)
        if pre.normalize == "per_image":
            x = crops.astype(np.float64)
            ref = (x - x.mean(axis=(1, 2), keepdims=True)) / (
                x.std(axis=(1, 2), ddof=1, keepdims=True) + 1.0
            )
            np.testing.assert_allclose(seen[0][:, 0].numpy(), ref, atol=1e-4)


def test_min_votes_filters_training_faces_only(monkeypatch):
    from exprsim.data.fer import FerSplit
    from exprsim.training import ferplus_data as train_mod

    rng = np.random.default_rng(0)
    n = 200
    votes = rng.integers(0, 3, size=(n, 8)).astype(np.float32)
    votes[:, 0] += 1  # every face has at least one emotion vote
    split = FerSplit(
        images=rng.integers(0, 256, size=(n, 48, 48), dtype=np.uint8),
        votes=votes,
        emotion=np.zeros(n, np.int64),
        rows=np.arange(n),
        usage="Training",
    )
    monkeypatch.setattr("exprsim.data.fer.load_ferplus", lambda *a, **k: split)
    cfg = TrainConfig(data="ferplus", val_fraction=0.2, min_votes=7)
    tr, va = train_mod.load_data(cfg)
    _, val_idx = train_mod.holdout_split(n, 0.2, 0)
    assert len(va.images) == len(val_idx)  # validation kept whole
    assert tr.votes is not None and (tr.votes.sum(axis=1) >= 7).all()
    tr_idx, _ = train_mod.holdout_split(n, 0.2, 0)
    assert len(tr.images) == int((votes[tr_idx].sum(axis=1) >= 7).sum())


@pytest.mark.slow
def test_vgg_hybrid_run_chooses_a_readout_angle(tmp_path):
    from exprsim.models.embedder import load_model

    cfg = TrainConfig(
        model="exprnet_v",
        model_kwargs={"stages": [[8], [8], [16], [16]]},
        data="synthetic",
        max_train=192,
        val_fraction=0.25,
        epochs=1,
        batch_size=48,
        triplet_weight=0.0,
        pair_weight=0.0625,
        pair_squared=True,
        pair_scale=2.0,
        decay_weights_only=True,
        preprocess=PreprocessConfig(normalize="per_image"),
        readout_angles=(0.0, 45.0, 90.0),
        num_threads=1,
    )
    out = tmp_path / "run"
    res = train(cfg, out, progress=False)
    rows = [json.loads(s) for s in (out / "readout.jsonl").read_text().splitlines()]
    assert [r["angle"] for r in rows] == [0.0, 45.0, 90.0]
    best = max(rows, key=lambda r: r["score"])["angle"]
    assert res.final_metrics["readout_angle"] == best
    exported = json.loads((out / "config.json").read_text())
    assert exported["model_kwargs"]["readout_angle"] == best
    assert exported["preprocess"]["normalize"] == "per_image"
    e = load_model(str(out)).embed_crops(np.zeros((2, 48, 48), np.uint8))
    assert e.shape == (2, 16)


@pytest.mark.slow
def test_kill_9_then_resume_equals_an_uninterrupted_run(tmp_path):
    """A training process killed (SIGKILL) in its second epoch and run again ends with the
    same weights as a run that was never interrupted."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from safetensors.numpy import load_file

    script = (
        "import sys; from exprsim.training.ferplus import TrainConfig, train\n"
        "cfg = TrainConfig(data='synthetic', max_train=1200, val_fraction=0.1, epochs=3,\n"
        "    batch_size=32, triplets_per_type=4, triplet_threshold=0.1, num_threads=1,\n"
        "    model_kwargs={'widths': [8, 16, 16, 16]})\n"
        "train(cfg, sys.argv[1], progress=False)\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def run(out, kill_after_epoch=None):
        proc = subprocess.Popen([sys.executable, "-c", script, str(out)], env=env)
        if kill_after_epoch is None:
            assert proc.wait(timeout=300) == 0
            return
        deadline = time.time() + 300
        while not (out / "state.pt").exists():
            assert proc.poll() is None and time.time() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)  # at the first checkpoint: in the 2nd epoch at most
        proc.wait()

    whole, killed = tmp_path / "whole", tmp_path / "killed"
    run(whole)
    run(killed, kill_after_epoch=1)
    assert not (killed / "model.safetensors").exists()  # it really died before the end
    run(killed)  # resume
    a = load_file(str(whole / "model.safetensors"))
    b = load_file(str(killed / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    epochs = [json.loads(s)["epoch"] for s in (killed / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]
