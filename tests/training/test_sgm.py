"""Algorithm 2 (SGM + sub-classes) as a learner: its loop with a tiny model, the FER+
callback on synthetic votes, and the ``sgm-subspaces`` recipe end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from exprsim.training.sgm import deep_gaussian_mixture_subspaces, ferplus_sgm_trainer
from mixtures import gaussian_subclasses
from run_folders import tiny_sgm

_mixture = gaussian_subclasses


def test_algorithm2_loop_with_a_tiny_sgm_model() -> None:
    import torch

    from exprsim.losses import SGMLoss

    emb0, labels, _ = _mixture(2)
    feats = torch.from_numpy(emb0).float()
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 4)
    calls = []

    def train_fn(level: int, lab: np.ndarray) -> np.ndarray:
        calls.append((level, len(np.unique(lab))))
        opt = torch.optim.Adam(net.parameters(), lr=0.01)
        target = torch.from_numpy(lab)
        for _ in range(30):
            opt.zero_grad()
            SGMLoss(norm_weight=0.01)(net(feats), target).backward()
            opt.step()
        with torch.no_grad():
            return net(feats).numpy()

    res = deep_gaussian_mixture_subspaces(labels, train_fn, levels=3)
    # level l trains on the labels of level l-1 (level 1 on the classes) and splits into l
    assert calls == [(1, 2), (2, 2), (3, 4)]
    assert [lv.level for lv in res.levels] == [1, 2, 3]
    assert np.array_equal(res.levels[0].labels, labels)
    assert res.parent.tolist() == [0, 0, 0, 1, 1, 1]
    assert np.array_equal(res.labels // 3, labels)  # class j's sub-classes: 3j .. 3j+2
    assert res.embeddings.shape == (len(labels), 4)


def test_ferplus_sgm_trainer_on_synthetic_data(tmp_path: Path) -> None:
    from exprsim.training.ferplus_config import TrainConfig

    cfg = TrainConfig(
        data="synthetic", max_train=120, val_fraction=0.2, epochs=1, batch_size=32,
        optimizer="adam", lr=1e-3, objective="sgm", sampler="balanced", per_class=4,
        augment=False, num_threads=1, model_kwargs={"widths": [8, 8, 8, 8]},
    )  # fmt: skip
    train_fn, labels = ferplus_sgm_trainer(cfg, tmp_path, progress=False)
    assert labels.shape == (120,)
    res = deep_gaussian_mixture_subspaces(labels, train_fn, levels=2)
    assert (tmp_path / "level2" / "model.safetensors").is_file()
    assert res.embeddings.shape == (120, 16)
    assert np.array_equal(res.labels // 2, labels)


def test_sgm_subspaces_recipe(tmp_path: Path) -> None:
    from exprsim.training import train_from_dict

    res = train_from_dict(tiny_sgm(levels=2), tmp_path, progress=False)
    saved = np.load(tmp_path / "subspaces.npz")
    level1, level2 = saved["level1"], saved["level2"]
    assert level1.shape == level2.shape == (120,)
    assert np.array_equal(level2 // 2, level1)  # level 1 = the classes; 2 ids per class
    summary = json.loads((tmp_path / "subspaces.json").read_text())
    assert summary["level2"]["n_subclasses"] == res.n_subclasses
    assert (tmp_path / "level2" / "config.json").is_file()


@pytest.mark.parametrize(
    "extra", [{"covariance_type": "ful"}, {"covariance_type": 3}, {"levels": 0}, {"levels": 1.5}]
)
def test_sgm_subspaces_config_checked_before_training(tmp_path: Path, extra: dict) -> None:
    """A bad covariance type or level count is refused before any training (it used to fail
    inside the first EM split, after a level had trained), and nothing is written."""
    from exprsim.errors import ExprsimError
    from exprsim.training import train_from_dict

    base = {"data": "synthetic", "max_train": 60, "epochs": 1, "objective": "sgm"}
    with pytest.raises((ExprsimError, ValueError), match=r"covariance_type|levels"):
        train_from_dict({"recipe": "sgm-subspaces", "base": base, **extra}, tmp_path / "run")
    assert not (tmp_path / "run" / "level1").exists()


def test_split_classes_refuses_unknown_covariance() -> None:
    from exprsim.apps.subclasses import split_classes
    from exprsim.errors import ExprsimError

    x = np.random.default_rng(0).normal(size=(40, 4))
    with pytest.raises(ExprsimError, match="covariance_type must be one of"):
        split_classes(x, np.zeros(40, np.int64), covariance_type="fulll")
