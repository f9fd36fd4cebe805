"""Round 33 (the public objects): SGM sub-space learning checks its inputs as
``split_classes`` does (fractional labels were cut, ``levels=2.5`` and a ``train_fn``
returning ``None`` were raw errors) and its results compare with ``==``; the training
configs hash (their ``model_kwargs`` dict made ``hash()`` raise)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from exprsim.errors import ExprsimError
from exprsim.training.fec import FECTrainConfig
from exprsim.training.ferplus_config import TrainConfig
from exprsim.training.sgm import SubspaceTrainConfig, deep_gaussian_mixture_subspaces


def _labels() -> np.ndarray:
    return np.repeat(np.arange(3), 20)


def _train(level: int, labels: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(level)
    return rng.normal(size=(len(labels), 4)) + labels[:, None]


def test_a_result_equals_its_copy() -> None:
    result = deep_gaussian_mixture_subspaces(_labels(), _train, levels=2)
    assert result == copy.deepcopy(result)  # was: "truth value of an array is ambiguous"
    assert result.labels.shape == (60,)


@pytest.mark.parametrize(
    ("labels", "levels", "train", "match"),
    [
        (_labels() + 0.5, 2, _train, "whole class ids"),
        (np.array(list("abc") * 20), 2, _train, "labels must be int class ids"),
        (_labels(), 2.5, _train, "levels must be an integer"),
        (_labels(), None, _train, "levels must be an integer"),
        (_labels(), 2, lambda level, y: None, "train_fn must return \\(60, D\\)"),
        (_labels(), 2, lambda level, y: np.zeros((59, 4)), "train_fn must return"),
    ],
)
def test_bad_inputs_are_one_line(labels, levels, train, match) -> None:
    with pytest.raises(ExprsimError, match=match):
        deep_gaussian_mixture_subspaces(labels, train, levels=levels)


@pytest.mark.parametrize("cls", [TrainConfig, FECTrainConfig, SubspaceTrainConfig])
def test_configs_hash_alike_when_equal(cls) -> None:
    a, b = cls(), cls()
    assert hash(a) == hash(b) and {a: 1}[b] == 1


def test_fec_training_names_the_config_key_of_a_missing_crops_folder(tmp_path) -> None:
    from exprsim.errors import DataError
    from exprsim.training.fec import _fec_data

    cfg = FECTrainConfig(train_csv=str(tmp_path / "t.csv"), crops_dir=str(tmp_path / "gone"))
    with pytest.raises(DataError, match=r"crops_dir of the training config.*no such folder"):
        _fec_data(cfg)


def test_configs_equal_by_number_hash_alike() -> None:
    """Review: the hash of sorted JSON told 1 from 1.0 (equal configs, two dict keys)."""
    a = TrainConfig(model_kwargs={"width": 1, "scale": 0.0})
    b = TrainConfig(model_kwargs={"width": 1.0, "scale": -0.0})
    assert a == b and hash(a) == hash(b)
