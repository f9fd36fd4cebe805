"""Stochastic weight averaging in the FER+ learner: the running mean against a naive one,
BatchNorm statistics against a direct computation, and resume after a crash."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from exprsim.training import ferplus
from exprsim.training.ferplus import _recompute_bn, _swa_update, train
from exprsim.training.ferplus_config import TrainConfig
from exprsim.training.ferplus_data import FerArrays


def test_running_average_equals_the_mean_of_snapshots() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    snaps, avg, n = [], None, 0
    for _ in range(4):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
        net(torch.randn(5, 3))  # moves the BatchNorm buffers and its counter
        snaps.append({k: v.clone() for k, v in net.state_dict().items()})
        avg, n = _swa_update(avg, n, net)
    assert n == 4 and avg is not None
    for k, v in avg.items():
        if v.is_floating_point():
            naive = sum(s[k] for s in snaps) / 4
            torch.testing.assert_close(v, naive)
        else:
            assert torch.equal(v, snaps[-1][k])


def test_batchnorm_statistics_are_recomputed_over_the_training_faces() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(70, 48, 48), dtype=np.uint8)
    data = FerArrays(images, np.full((70, 8), 1 / 8, np.float32))
    cfg = TrainConfig(augment=False)
    bn = torch.nn.BatchNorm2d(1)
    bn.running_mean.fill_(5.0)
    _recompute_bn(torch.nn.Sequential(bn), data, cfg, batch=32)  # 3 batches
    assert bn.momentum == 0.1  # restored after the cumulative pass
    # cumulative (equal-weight) average over the batches of each batch's statistics
    batches = [ferplus._to_input(images[s : s + 32], cfg.preprocess).double() for s in (0, 32, 64)]
    mean = np.mean([b.mean().item() for b in batches])
    var = np.mean([b.var().item() for b in batches])  # unbiased, as BatchNorm's running_var
    np.testing.assert_allclose(bn.running_mean.item(), mean, rtol=1e-5)
    np.testing.assert_allclose(bn.running_var.item(), var, rtol=1e-5)


@pytest.mark.slow
def test_swa_run_resumed_after_a_crash_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    cfg = TrainConfig(
        data="synthetic", max_train=160, val_fraction=0.2, epochs=3, batch_size=32,
        triplet_weight=0.0, num_threads=1, swa_epochs=2, model_kwargs={"widths": [8, 8, 8, 8]},
    )  # fmt: skip
    full = train(cfg, tmp_path / "a", progress=False)
    assert full.final_metrics["swa_snapshots"] == 2.0
    real = ferplus._train_epoch

    def crash_in_epoch_3(s, c, epoch, progress):
        if epoch == 2:
            raise KeyboardInterrupt
        return real(s, c, epoch, progress)

    monkeypatch.setattr(ferplus, "_train_epoch", crash_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "b", progress=False)
    assert not (tmp_path / "b" / "model.safetensors").exists()
    monkeypatch.setattr(ferplus, "_train_epoch", real)
    resumed = train(cfg, tmp_path / "b", progress=False)
    assert resumed.epochs_run == 1
    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "a" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)


@pytest.mark.slow
def test_a_finished_swa_run_extends_its_window_like_one_long_run(tmp_path):
    """epochs 2 / swa 2, then resumed with epochs 3 / swa 3: the third epoch joins the same
    running mean, and the result equals a 3-epoch run averaged over all 3 (how v5 was made
    from v4). A window moved past epochs already done is refused."""
    from dataclasses import replace

    base = TrainConfig(
        data="synthetic", max_train=160, val_fraction=0.2, epochs=3, batch_size=32,
        triplet_weight=0.0, num_threads=1, swa_epochs=3, lr_schedule="constant",
        model_kwargs={"widths": [8, 8, 8, 8]},
    )  # fmt: skip
    long = train(base, tmp_path / "long", progress=False)
    short = replace(base, epochs=2, swa_epochs=2)
    train(short, tmp_path / "ext", progress=False)
    extended = train(base, tmp_path / "ext", progress=False)
    assert extended.epochs_run == 1 and extended.final_metrics["swa_snapshots"] == 3.0
    assert long.final_metrics["swa_snapshots"] == 3.0
    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "long" / "model.safetensors"))
    b = load_file(str(tmp_path / "ext" / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="averaged snapshots"):
        train(replace(base, epochs=4, swa_epochs=1), tmp_path / "ext", progress=False)
