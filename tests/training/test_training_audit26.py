"""Round 26 (docs/robustness.md): a run resumed after its data changed."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import exprsim.training.ferplus_data as ferplus_data
from exprsim.training.ferplus import train
from exprsim.training.ferplus_config import TrainConfig

CFG = TrainConfig(
    data="synthetic",
    max_train=128,
    val_fraction=0.25,
    epochs=1,
    batch_size=32,
    triplets_per_type=4,
    num_threads=1,
)


def _state(out):
    return (out / "state.pt").read_bytes()


def test_a_run_resumed_on_other_faces_is_refused_and_its_checkpoint_kept(tmp_path, monkeypatch):
    out = tmp_path / "run"
    train(CFG, out, progress=False)
    before = _state(out)
    real = ferplus_data.synthetic_votes

    def other_faces(n, seed=0, size=48):
        return real(n, seed=seed + 1, size=size)  # the same config, another data set

    monkeypatch.setattr(ferplus_data, "synthetic_votes", other_faces)
    with pytest.raises(ValueError, match="training data changed since its last checkpoint"):
        train(replace(CFG, epochs=2), out, progress=False)
    assert _state(out) == before
    monkeypatch.setattr(ferplus_data, "synthetic_votes", real)
    assert train(replace(CFG, epochs=2), out, progress=False).epochs_run == 1  # the same data


def test_a_run_resumed_with_other_labels_is_refused(tmp_path):
    labels = np.argmax(ferplus_data.synthetic_votes(128).dist, axis=1)
    out = tmp_path / "run"
    train(CFG, out, progress=False, labels=labels)
    with pytest.raises(ValueError, match="training data changed"):
        train(replace(CFG, epochs=2), out, progress=False, labels=np.roll(labels, 1))
    assert train(replace(CFG, epochs=2), out, progress=False, labels=labels).epochs_run == 1


def test_data_digest_sees_one_pixel_and_one_vote():
    tr, va = ferplus_data.synthetic_votes(20), ferplus_data.synthetic_votes(8, seed=3)
    base = ferplus_data.data_digest(tr, va)
    img = tr.images.copy()
    img[3, 10, 10] ^= 1
    dist = va.dist.copy()
    dist[0, [0, 1]] = dist[0, [1, 0]]
    assert ferplus_data.data_digest(replace(tr, images=img), va) != base
    assert ferplus_data.data_digest(tr, replace(va, dist=dist)) != base
    assert ferplus_data.data_digest(tr, va, np.zeros(28, np.int64)) != base
    assert ferplus_data.data_digest(tr, va) == base


# ------------------------------------------------------------- refused when the config is read


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"blur_ksize": 99, "blur_p": 1.0}, "blur_ksize must be at most 95"),  # was a torch error
        ({"scale": (0.0, 0.0)}, "scale must be"),  # was numpy's "Singular matrix"
        ({"scale": (1.2, 0.8)}, "scale must be"),
        ({"contrast": (1.2, float("nan"))}, "contrast must be finite"),
        ({"rotate_deg": float("inf")}, "rotate_deg must be finite"),
    ],
)
def test_augmentation_ranges_are_refused_when_made(changes, message):
    from exprsim.data.augment import AugmentConfig

    with pytest.raises(ValueError, match=message):
        AugmentConfig(**changes)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"seed": 2**62}, r"seed must be in \[0, 4294967295\]"),  # was an overflow at epoch 1
        ({"split_seed": 2**40}, "split_seed must be in"),
        ({"triplets_per_type": 0}, r"triplets_per_type must be in \[1, 10000\]"),  # was a NaN loss
    ],
)
def test_training_settings_are_refused_before_anything_is_written(tmp_path, changes, message):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=message):
        train(replace(CFG, **changes), out, progress=False)
    assert not out.exists()


def test_no_triplets_are_fine_without_the_triplet_term(tmp_path):
    cfg = replace(CFG, triplets_per_type=0, triplet_weight=0.0)
    res = train(cfg, tmp_path / "run", progress=False)
    assert np.isfinite(res.final_metrics["loss"])


def test_evaluate_names_a_run_not_exported_yet_before_reading_data(tmp_path, monkeypatch, capsys):
    import exprsim.evaluate
    from exprsim.cli import main

    def no_data(*args, **kwargs):
        raise AssertionError("the FER+ data were read")

    monkeypatch.setattr(exprsim.evaluate, "evaluate_ferplus", no_data)
    run = tmp_path / "run"
    run.mkdir()
    (run / "train_config.json").write_text("{}")
    assert main(["evaluate", "--model", str(run)]) == 2
    assert "a training run not exported yet" in capsys.readouterr().err
