"""The original FER2013 label as extra votes in the per-face target (``fer2013_vote``)."""

from __future__ import annotations

import numpy as np
import pytest

from exprsim.data.fer import FER2013_CLASSES, FERPLUS_CLASSES
from exprsim.training.ferplus_config import TrainConfig
from exprsim.training.ferplus_data import fer2013_as_ferplus, load_data


def test_fer2013_labels_map_to_the_ferplus_class_of_the_same_name():
    names = {"angry": "anger", "happy": "happiness", "sad": "sadness"}
    got = fer2013_as_ferplus(np.arange(-1, 8))
    expected = [-1] + [FERPLUS_CLASSES.index(names.get(c, c)) for c in FER2013_CLASSES] + [-1]
    assert got.tolist() == expected


def _pack(tmp_path, n=60):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 48, 48), dtype=np.uint8)
    votes = rng.integers(0, 4, (n, 8)).astype(np.float32)
    votes[:, 0] += 1  # every face has a vote
    fer2013 = fer2013_as_ferplus(rng.integers(0, 7, n))
    path = tmp_path / "pack.npz"
    np.savez(path, images=images, votes=votes, rows=np.arange(n), fer2013=fer2013)
    return path, votes, fer2013


@pytest.mark.parametrize("classes", [(), ("disgust",)])
def test_training_targets_take_the_vote_validation_and_pairs_do_not(tmp_path, classes):
    path, votes, fer2013 = _pack(tmp_path)
    cfg = TrainConfig(
        data="ferplus", data_dir=str(path), val_fraction=0.25, fer2013_vote=2.0,
        fer2013_vote_classes=classes,
    )  # fmt: skip
    train, val = load_data(cfg)
    allowed = set(classes) or set(FERPLUS_CLASSES) - {"contempt"}
    for row, target, dist in zip(train.rows, train.target, train.dist, strict=True):
        v = votes[row].astype(np.float64)  # a face-by-face loop as the reference
        if FERPLUS_CLASSES[fer2013[row]] in allowed:
            v[fer2013[row]] += 2.0
        np.testing.assert_allclose(target, v / v.sum(), rtol=1e-6)
        np.testing.assert_allclose(dist, votes[row] / votes[row].sum(), rtol=1e-6)  # pairs
    assert val.target is None  # validation scores the FER+ votes alone
    plain, _ = load_data(TrainConfig(data="ferplus", data_dir=str(path), val_fraction=0.25))
    assert plain.target is None and np.array_equal(plain.rows, train.rows)


def test_the_vote_needs_fer2013_labels_and_known_classes(tmp_path):
    from exprsim.errors import DataError
    from exprsim.training.ferplus import _check_choices as check_config

    with pytest.raises(DataError, match="FER2013 labels"):
        load_data(TrainConfig(data="synthetic", max_train=32, fer2013_vote=1.0))
    with pytest.raises(ValueError, match="fer2013_vote_classes"):
        check_config(TrainConfig(fer2013_vote=1.0, fer2013_vote_classes=("contempt",)))
    with pytest.raises(ValueError, match="fer2013_vote must be"):
        check_config(TrainConfig(fer2013_vote=-1.0))
