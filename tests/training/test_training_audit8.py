"""Eighth audit, training: a resume after the last checkpoint exports the same weights (the
SWA BatchNorm pass is seeded), an epoch is logged once after a kill before the first
checkpoint, and a damaged line of ``metrics.jsonl`` is dropped instead of blocking resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from exprsim.training.ferplus import _recompute_bn, train
from exprsim.training.ferplus_config import TrainConfig
from exprsim.training.ferplus_data import FerArrays
from exprsim.training.run import RunFolder


def _cfg(**kw: object) -> TrainConfig:
    base: dict[str, object] = dict(
        data="synthetic", max_train=64, val_fraction=0.25, epochs=2, batch_size=16,
        triplet_weight=0.0, num_threads=1, model_kwargs={"widths": [8, 8, 8, 8]},
    )  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def _epochs(out: Path) -> list[int]:
    return [json.loads(s)["epoch"] for s in (out / "metrics.jsonl").read_text().splitlines()]


def test_bn_recompute_does_not_depend_on_the_global_rng() -> None:
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3), torch.nn.Dropout(0.5), torch.nn.BatchNorm2d(2)
    )
    images = np.random.default_rng(0).integers(0, 256, size=(40, 48, 48), dtype=np.uint8)
    data = FerArrays(images, np.full((40, 8), 1 / 8, np.float32))
    cfg = TrainConfig(augment=False)
    stats = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        _recompute_bn(net, data, cfg, batch=16)
        stats.append(net[2].running_mean.clone())
    torch.testing.assert_close(stats[0], stats[1], rtol=0, atol=0)
    torch.manual_seed(3)
    expected = torch.rand(1)
    torch.manual_seed(3)
    _recompute_bn(net, data, cfg, batch=16)
    assert torch.equal(torch.rand(1), expected)  # the caller's RNG stream is left as it was


def test_swa_resume_after_the_last_checkpoint_exports_the_same_model(tmp_path: Path) -> None:
    cfg = _cfg(swa_epochs=1)
    train(cfg, tmp_path / "a", progress=False)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    for name in ("model.safetensors", "config.json", "swa.json", "train_result.json"):
        (tmp_path / "b" / name).unlink(missing_ok=True)  # killed inside _finish
    assert train(cfg, tmp_path / "b", progress=False).epochs_run == 0
    a = (tmp_path / "a" / "model.safetensors").read_bytes()
    assert (tmp_path / "b" / "model.safetensors").read_bytes() == a


def test_kill_before_the_first_checkpoint_logs_each_epoch_once(tmp_path: Path) -> None:
    cfg = _cfg()
    out = tmp_path / "r"
    RunFolder(out).claim(cfg)
    (out / "metrics.jsonl").write_text('{"epoch": 1, "loss": 2.0}\n')  # no state.pt
    train(cfg, out, progress=False)
    assert _epochs(out) == [1, 2]


def test_damaged_last_metrics_line_is_dropped_and_the_run_resumes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "r"
    train(_cfg(epochs=1), out, progress=False)
    with (out / "metrics.jsonl").open("a") as f:
        f.write('{"loss": 1.23, "kl"')  # a partial row: full disk or power cut
    with caplog.at_level("WARNING", logger="exprsim.training.run"):
        result = train(_cfg(epochs=2), out, progress=False)
    assert result.epochs_run == 1
    assert _epochs(out) == [1, 2]
    assert "metrics.jsonl" in caplog.text and "damaged" in caplog.text


def test_trim_metrics_drops_non_object_lines(tmp_path: Path) -> None:
    run = RunFolder(tmp_path)
    run.metrics_path.write_text('{"epoch": 1}\n[1, 2]\n"x"\n{"epoch": 2}\n{"epoch": 3}\n{"ep')
    run.trim_metrics("epoch", 2)
    assert run.metrics_path.read_text() == '{"epoch": 1}\n{"epoch": 2}\n'
